package proxy

import (
	"time"

	"github.com/llmgate/llmgate/internal/upstream"
)

// Events receives what the handler observes, for metrics and tracing.
// Implementations must be fast, must not block, and must be safe for
// concurrent use. The handler never imports a metrics library.
type Events interface {
	// Transition reports a circuit state change of a backend.
	Transition(t upstream.Transition)
	// Attempt reports one finished upstream attempt.
	Attempt(a *AttemptInfo)
	// Request reports one finished client request.
	Request(r *RequestInfo)
}

// Attempt outcomes: a closed vocabulary, safe as metric label values.
const (
	OutcomeOK          = "ok"           // 2xx
	OutcomeClientError = "client_error" // 4xx other than 401/403/429: the caller's fault
	OutcomeThrottled   = "429"
	OutcomeServerError = "5xx"
	OutcomeAuth        = "auth"         // 401/403 from the backend
	OutcomeTimeout     = "timeout"      // no headers in time, or a stalled body
	OutcomeConnection  = "connection"   // dial, reset, refused
	OutcomeErrorEvent  = "error_event"  // 200 whose first event is an error
	OutcomeStreamCut   = "stream_cut"   // broke after the first byte
	OutcomeRedirect    = "redirect"     // refused
	OutcomeBadResponse = "bad_response" // an answer that is not valid HTTP (or whose head is too large)
	OutcomeCanceled    = "canceled"     // the client went away
	OutcomeDeadline    = "deadline"     // the request's own time ran out (timeouts.total, x-stainless-timeout): not the backend's fault
)

// AttemptInfo describes one upstream attempt. Valid only during the call.
type AttemptInfo struct {
	Backend string
	Model   string // the deployment or model name the client asked for
	Outcome string // one of the Outcome constants
	Status  int    // upstream HTTP status; 0 if none
	// Retry is true for every attempt after a request's first.
	Retry bool
	// Latency is from sending to the response headers.
	Latency time.Duration
	// PrevBackend and PrevOutcome describe the attempt this one retries
	// (empty for a request's first): the retry's reason.
	PrevBackend, PrevOutcome string
}

// RequestInfo describes one finished client request. Valid only during the call.
type RequestInfo struct {
	// Route is the operation, e.g. "chat/completions", "embeddings", "other".
	Route    string
	Model    string
	Key      string // the key's name, never the key
	Backend  string // the backend that answered last; "" if none
	Status   int
	Attempts int
	Stream   bool
	Duration time.Duration
	// TTFB is the time to the first byte sent to the client.
	TTFB time.Duration
	// PromptTokens and CompletionTokens are the usage reported upstream (0 if unknown).
	PromptTokens, CompletionTokens int64
}
