// Package sim is the built-in Azure OpenAI simulator: an [http.Handler] that answers like an
// Azure OpenAI resource (and the OpenAI API), with Azure's quotas, a latency model and faults
// injected on demand. `llmgate simulate`, `llmgate demo`, tests and benchmarks use it.
//
// # Routes
//
// Azure, with the required api-version query parameter (missing: 404 "Resource not found";
// present but not shaped like YYYY-MM-DD or YYYY-MM-DD-preview: 400 "API version not supported"):
//
//	POST /openai/deployments/{id}/chat/completions
//	POST /openai/deployments/{id}/completions
//	POST /openai/deployments/{id}/embeddings
//	POST /openai/deployments/{id}/images/generations
//	POST /openai/deployments/{id}/audio/transcriptions   (multipart/form-data)
//	POST /openai/deployments/{id}/audio/translations     (multipart/form-data)
//	GET  /openai/models
//
// OpenAI style, under /v1/ and Azure's /openai/v1/, with no api-version and the deployment taken
// from the body's "model" field (a form field for audio): chat/completions, completions,
// embeddings, images/generations, audio/transcriptions, audio/translations, and GET models.
//
// Any deployment name made of 1 to 128 letters, digits and . _ - : exists; any other name gets
// 404 DeploymentNotFound. At most 4096 distinct deployments are tracked for quotas; further ones
// get 404 DeploymentNotFound too.
//
// # Authentication
//
// If a key is set, every route (including the admin routes) requires it as "api-key: K" or
// "Authorization: Bearer K"; a missing or wrong key gets Azure's 401 body
// {"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API
// endpoint. ..."}}.
//
// # Answers
//
// Content is made of words drawn from a small fixed vocabulary by a PRNG seeded from the seed and
// a hash of the prompt text (message roles and contents, prompts, inputs), so the same seed and
// prompt give the same answer, streamed or not. A choice's natural length is 8 to 48 tokens;
// max_completion_tokens (or else max_tokens) cuts it, with finish_reason "length". Legacy
// completions without max_tokens are cut at 16 tokens, as the real API does. Each generated
// word is one completion token.
//
// Function calling: a chat request with "tools" (type "function") gets a call of one of them,
// with finish_reason "tool_calls", when tool_choice is "required", or "auto" (the default with
// tools) and the last message is not a tool's result; a named tool_choice calls that function
// with finish_reason "stop", as the API does; "none", and "auto" after a tool's result, get text.
// The deprecated "functions" and "function_call" work the same way and answer with
// message.function_call and finish_reason "function_call". The call's arguments are a JSON
// object made from the function's parameters schema, its id "call_" and 24 characters, all
// deterministic per seed and prompt; the definitions count as prompt text. "response_format"
// json_object answers {"answer": text} (the messages must say "json", or 400 as from the API)
// and json_schema an object made from the schema. Schemas are followed for types, properties,
// items, enum, const, the first of anyOf/oneOf/allOf, local $ref to $defs or definitions
// (recursion ends in the required properties), minimum/maximum, minItems/maxItems,
// minLength/maxLength and the formats email, uri, date, date-time, time and uuid; pattern is
// not. Such fixed answers count one completion token per piece of about 4 bytes (never a split
// character) and stream in those pieces (a tool call as tool_calls deltas, the first with id and
// name); max_tokens and [[content_filter:completion]] cut them as they cut text. Empty tools,
// a tool or function without a valid name or with parameters that are not an object, unknown
// tool choices, parallel_tool_calls or function_call without what they refer to, and unknown
// formats get 400 naming the parameter.
//
// Magic markers in the prompt text (document them in gateway tests, they never reach a real
// backend):
//
//	[[content_filter]]             400 with Azure's content-filter error body (code "content_filter")
//	[[content_filter:completion]]  200 whose choices stop halfway with finish_reason "content_filter"
//	[[tokens:N]]                   each choice's natural length is N tokens (0..4096)
//
// prompt_tokens is an approximation, not a real tokenizer: ⌈c/4⌉ tokens for a text of c Unicode
// code points. For chat, 3 + Σ over messages of (4 + ⌈content/4⌉ + ⌈name/4⌉), where an array
// content counts its text parts and 85 tokens per image part. For completions and embeddings,
// Σ over the prompts or inputs of ⌈c/4⌉ (an array of token ids counts its length).
//
// Embeddings have 16 dimensions unless the request's "dimensions" (1..3072) says otherwise;
// vectors are unit length, deterministic per input and seed, and come as JSON floats or, with
// "encoding_format":"base64", as base64 of little-endian float32.
//
// # Streaming
//
// With "stream": true, chat and completions answer text/event-stream with x-accel-buffering: no,
// one "data: {chunk}\n\n" event per token (flushed), the role in each choice's first delta,
// then, for chat, a chunk of each choice's own with an empty delta and its finish_reason (as the
// API ends a choice; for completions finish_reason is on the last token's chunk), and
// "data: [DONE]\n\n" at the end. With
// "stream_options":{"include_usage":true} every chunk has "usage":null and one more chunk with
// "choices":[] and the usage precedes [DONE]. On /openai/deployments routes, chat streams begin,
// as Azure's do, with a chunk that has empty id, model and choices and prompt_filter_results.
//
// # Latency
//
// A streamed answer sends its headers at once, its first token after TTFT and each further token
// after TokenInterval. A non-streamed answer is sent after TTFT + n × TokenInterval, n being the
// longest choice's completion tokens (0 for embeddings; the number of words for audio and 0 for
// images). Zero durations mean no wait. Waits use real timers (the injected clock is for quotas
// only) and end early when the client leaves or the Server is closed.
//
// # Quotas
//
// Per deployment, like Azure: TPM tokens and RPM requests over a sliding window (default one
// minute) that records every admission with its time, so over any window the admitted tokens
// never exceed TPM and the admitted requests never exceed RPM. A request is charged at admission
// with an estimate: prompt tokens + max_completion_tokens (or max_tokens) × the number of
// choices (n, or best_of if larger, times the number of prompts). A chat request without either
// is charged the length its answer will have (the simulator plans it before answering), so the
// usage it reports never exceeds its charge; a legacy completion without max_tokens is charged
// 16 per choice, its cap. Embeddings are charged their prompt tokens; images and audio 0 tokens
// and one request.
//
// Over quota the answer is 429 with Azure's body ("... have exceeded token rate limit of your
// current OpenAI S0 pricing tier. Please retry after N seconds. ..." or "call rate limit" for
// requests) and truthful retry-after (whole seconds, rounded up) and retry-after-ms headers: the
// exact time after which the same request would be admitted if nothing else were. A request whose
// estimate alone exceeds TPM can never be admitted: it gets 429 with a message saying so,
// x-should-retry: false, and retry-after and retry-after-ms giving the time until the whole
// window is free again (every admission in it a window old; 1 s and 1 ms if it already is),
// after which any request that fits is admitted. So every 429 of the quota carries
// both retry headers; injected 429s carry them unless their delay is set negative.
//
// Every answer of the API routes (success or error, plain or streamed, Azure or /v1 paths,
// injected faults included; not the admin routes, and not a reset or hung connection) carries,
// as Azure's always do, x-ratelimit-limit-requests, x-ratelimit-remaining-requests,
// x-ratelimit-limit-tokens and x-ratelimit-remaining-tokens. A dimension without a limit (TPM
// or RPM zero) reports 2147483647 as both its limit and its remaining value, on every answer,
// never decremented: the largest value a 32-bit parser accepts, far above any quota Azure grants
// a deployment, so a gateway that steers by remaining/limit sees a backend with all its capacity.
// The values are those of the deployment the request names; an answer given before the
// simulator knows which (a 401 or an outage on /v1 paths, whose body is not read, the model
// list, an unknown route, a body without a valid model) reports the least any deployment has
// left, so it never promises more than the meant deployment has; a deployment nothing was
// charged to reports its full limits. Every answer carries apim-request-id and x-request-id
// (the same uuid-like id), x-ms-region when a region is set, and echoes x-ms-client-request-id.
//
// # Faults
//
// Per request, in this order, one uniform draw picks at most one of: connection reset (reset),
// no answer at all (hang), 500 (fail_500), 503 (fail_503), 429 with retry-after headers
// (fail_429), stream cut (stream_cut), error event (error_event); rates are fractions 0..1 and
// their sum should not exceed 1 (the later ones are starved if it does). A second draw decides
// slow headers (slow_headers). Draws come from the seed and a per-request counter, so the same
// seed and the same sequence of requests give the same outcomes. Faults apply to requests that
// passed authentication, routing and body validation, before the quota check; injected faults do
// not consume quota, except stream_cut and error_event, which happen to admitted requests.
//
//   - reset: the connection is closed with a TCP RST before any answer.
//   - hang: no answer until the client goes away or the Server is closed; then the connection
//     is aborted.
//   - stream_cut: a stream is aborted after about half of its token chunks, without [DONE]; a
//     non-streamed answer is aborted after half of its body.
//   - error_event: a stream answers 200 text/event-stream and then only
//     data: {"error":{...}} (streaming requests only; non-streamed requests are unaffected).
//   - slow_headers: the answer (whatever it is) starts after slow_headers_delay (default 2 s).
//   - auth_break: every request gets the 401 answer, even with the right key.
//   - outage (started with [Server.StartOutage] or the -outage flag): every request gets 503
//     {"error":{"code":"ServiceUnavailable",...}} without retry-after, or a connection reset if
//     outage_reset is set, until the window ends.
//
// # Admin endpoint
//
// Outside /openai and /v1, requiring the key when one is set:
//
//	GET         /sim/faults           the faults in effect as JSON (durations as strings such as "2s")
//	PUT, POST   /sim/faults           replace the faults with the JSON body (unknown fields: 400)
//	DELETE      /sim/faults           turn every fault off
//	GET         /sim/outage           {"remaining":"…"} of the current outage
//	POST        /sim/outage?for=10    start an outage of that length (for=0 ends it)
//	GET         /sim/stats            the counters of [Server.Stats] as JSON
//
// The body of a PUT names the faults to inject: a rate or switch it leaves out is off. The two
// delays, retry_after_429 and slow_headers_delay, say how a fault looks rather than whether it
// happens: a PUT that leaves one out, and a DELETE, keep its value (the one the simulator was
// started with, until a PUT names it); 0 sets the default (1s, 2s). GET, and the answer to a PUT
// or DELETE, report the delays in use, so retry_after_429 is what injected 429s advertise
// (rounded up to whole seconds in retry-after).
//
// A time span (the outage's for, the faults' retry_after_429 and slow_headers_delay, and the
// duration flags) is a Go duration ("10s", "1m30s", "250ms") or a plain decimal number of
// seconds ("10", "1.5", ".25"); in the faults JSON also a JSON number of seconds (1.5).
// Text with an exponent ("1e3"), units other than Go's, and spans beyond about 292 years are
// refused.
//
// # Command
//
// [Run] implements `llmgate simulate`:
//
//	llmgate simulate -listen 127.0.0.1:8089 -key K -tpm 30000 -rpm 180 -ttft 300ms \
//	    -token-interval 20ms -seed 1 -fail-500 0.05 -fail-429 0.05 -stream-cut 0.02
//
// Flags: -listen, -key, -tpm, -rpm, -window, -ttft, -token-interval, -seed, -region,
// -log-level, and the fault flags -fail-500, -fail-503, -fail-429, -fail-429-retry-after,
// -reset, -hang, -slow-headers, -slow-headers-delay, -stream-cut, -error-event, -auth-break,
// -outage, -outage-reset. The duration flags (-window, -ttft, -token-interval,
// -fail-429-retry-after, -slow-headers-delay, -outage) take time spans as the admin endpoint
// does: -outage 30 is -outage 30s.
package sim
