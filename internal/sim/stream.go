package sim

import (
	"net/http"
	"strconv"
)

// azurePromptFilterChunk starts the first event of Azure chat streams: no id, no model, no
// choices, only the prompt's content filter verdict. appendChunkEnd closes its array.
const azurePromptFilterChunk = `{"choices":[],"created":0,"id":"","model":"","object":"",` +
	`"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{` +
	`"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},` +
	`"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},` +
	`"violence":{"filtered":false,"severity":"safe"}}}`

// sseWriter writes server-sent events and flushes each one.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
	err error
}

// send writes data (whole events, or nothing to flush the headers) and flushes; it returns
// false once the client is gone.
func (sw *sseWriter) send(data []byte) bool {
	if sw.err != nil {
		return false
	}
	if _, sw.err = sw.w.Write(data); sw.err == nil {
		sw.err = sw.rc.Flush()
	}
	return sw.err == nil
}

// stream answers a chat or completions request with "stream": true.
func (s *Server) stream(x *exchange) {
	c, w, ctx := x.call, x.w, x.r.Context()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.stats.streams.Add(1)
	s.writeHead(w, http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), buf: make([]byte, 0, 512)}
	if x.fault == faultErrorEvent {
		sw.send([]byte("data: " + errorEventData + "\n\n"))
		return
	}
	if !sw.send(nil) { // headers now, tokens later
		return
	}
	if x.route.azure && c.op == opChat {
		b := append(sw.buf[:0], "data: "...)
		b = append(b, azurePromptFilterChunk...)
		b = appendChunkEnd(b, c.includeUsage)
		if sw.buf = b; !sw.send(b) {
			return
		}
	}

	limit := c.limit()
	choices := make([]choice, c.choices())
	var completion, steps int64
	for k := range choices {
		choices[k] = c.plan(s.seed, k, limit)
		completion += choices[k].n
		steps = max(steps, choices[k].n)
	}
	steps = max(steps, 1) // a choice with no token still sends its finish_reason
	s.stats.usage(c.prompt.tokens, completion)

	prefix := s.chunkPrefix(x)
	cutAt := int64(-1)
	if x.fault == faultStreamCut {
		cutAt = max(steps/2, 1)
	}
	for step := int64(0); step < steps; step++ {
		wait := s.interval
		if step == 0 {
			wait = s.ttft
		}
		if !s.sleep(ctx, wait) {
			return
		}
		for k := range choices {
			ch := &choices[k]
			if ch.done() && !(step == 0 && ch.n == 0) {
				continue
			}
			b := append(sw.buf[:0], prefix...)
			b = s.appendChoiceDelta(b, c, k, ch)
			b = appendChunkEnd(b, c.includeUsage)
			if sw.buf = b; !sw.send(b) {
				return
			}
			if c.op == opChat && ch.done() {
				// A chat choice ends with a chunk of its own: an empty
				// delta and the finish_reason, as the API sends it.
				b = append(sw.buf[:0], prefix...)
				b = append(b, `{"index":`...)
				b = strconv.AppendInt(b, int64(k), 10)
				b = append(b, `,"delta":{},"logprobs":null,"finish_reason":"`...)
				b = append(b, ch.finish...)
				b = append(b, `"}`...)
				b = appendChunkEnd(b, c.includeUsage)
				if sw.buf = b; !sw.send(b) {
					return
				}
			}
		}
		if step+1 == cutAt {
			s.abort()
		}
	}
	if c.includeUsage {
		b := append(sw.buf[:0], prefix...)
		b = append(b, `],"usage":{"prompt_tokens":`...)
		b = strconv.AppendInt(b, c.prompt.tokens, 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, completion, 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, c.prompt.tokens+completion, 10)
		b = append(b, "}}\n\n"...)
		if sw.buf = b; !sw.send(b) {
			return
		}
	}
	sw.send([]byte("data: [DONE]\n\n"))
}

// chunkPrefix is the start of every chunk event, up to the opening of the choices array. Ids
// and validated model names need no JSON escaping.
func (s *Server) chunkPrefix(x *exchange) []byte {
	id, object := s.objectID("chatcmpl-", x.id), "chat.completion.chunk"
	if x.call.op == opCompletions {
		id, object = s.objectID("cmpl-", x.id), "text_completion"
	}
	b := make([]byte, 0, 128)
	b = append(b, `data: {"id":"`...)
	b = append(b, id...)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, s.now().Unix(), 10)
	b = append(b, `,"model":"`...)
	b = append(b, x.call.model...)
	b = append(b, `","choices":[`...)
	return b
}

// appendChoiceDelta appends choice k's next token: a word (vocabulary
// pieces need no JSON escaping), or a piece of a tool call's arguments, a
// function call's or JSON content. A chat token's finish_reason is null
// (its own chunk follows the last); a completion's last token carries it.
func (s *Server) appendChoiceDelta(b []byte, c *call, k int, ch *choice) []byte {
	first := ch.i == 0
	last := ch.n == 0 || ch.last()
	piece := ""
	if ch.n > 0 {
		piece = ch.next()
	}
	if c.op != opChat {
		b = append(b, `{"text":"`...)
		b = append(b, piece...)
		b = append(b, `","index":`...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		if last {
			b = append(b, '"')
			b = append(b, ch.finish...)
			return append(b, `"}`...)
		}
		return append(b, "null}"...)
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(k), 10)
	f := c.fixed
	switch {
	case f != nil && f.tool != "" && first:
		b = append(b, `,"delta":{"role":"assistant","content":null,`...)
		if f.legacy {
			b = append(b, `"function_call":{"name":"`...)
		} else {
			b = append(b, `"tool_calls":[{"index":0,"id":"`...)
			b = append(b, c.callID(s.seed, k)...)
			b = append(b, `","type":"function","function":{"name":"`...)
		}
		b = append(b, f.tool...)
		b = append(b, `","arguments":"`...)
		b = appendJSONText(b, piece)
		if f.legacy {
			b = append(b, `"}}`...)
		} else {
			b = append(b, `"}}]}`...)
		}
	case f != nil && f.tool != "" && f.legacy:
		b = append(b, `,"delta":{"function_call":{"arguments":"`...)
		b = appendJSONText(b, piece)
		b = append(b, `"}}`...)
	case f != nil && f.tool != "":
		b = append(b, `,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"`...)
		b = appendJSONText(b, piece)
		b = append(b, `"}}]}`...)
	default:
		b = append(b, `,"delta":{`...)
		if first {
			b = append(b, `"role":"assistant",`...)
		}
		b = append(b, `"content":"`...)
		if f != nil {
			b = appendJSONText(b, piece)
		} else {
			b = append(b, piece...)
		}
		b = append(b, `"}`...)
	}
	return append(b, `,"logprobs":null,"finish_reason":null}`...)
}

// appendChunkEnd closes the choices array and the chunk, with "usage":null if the stream
// reports usage at the end.
func appendChunkEnd(b []byte, includeUsage bool) []byte {
	if includeUsage {
		return append(b, "],\"usage\":null}\n\n"...)
	}
	return append(b, "]}\n\n"...)
}
