package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/llmgate/llmgate/internal/api/openai"
)

// unauthorizedBody is the exact body API Management's policy answers with.
// Missing and wrong keys get the same bytes.
const unauthorizedBody = `{"error":{"code":"401","message":"Unauthorized. Invalid API key."}}`

// statusClientClosed is logged when the client went away (nginx's 499).
const statusClientClosed = 499

// Error types, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
	typeRateLimit      = "rate_limit_error"
)

// writeError answers with the OpenAI error shape. It is the one place that
// turns a gateway-made failure into a client response.
func writeError(w http.ResponseWriter, q *request, status int, typ, code, msg string) {
	q.status = status
	q.ttfb = time.Since(q.start)
	setGatewayHeaders(w.Header(), q)
	b, _ := json.Marshal(openai.ErrorBody{Error: openai.Error{Message: msg, Type: typ, Code: code}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	m, _ := w.Write(b)
	q.bytesOut += int64(m)
}

func writeUnauthorized(w http.ResponseWriter, q *request) {
	q.status = http.StatusUnauthorized
	q.ttfb = time.Since(q.start)
	h := w.Header()
	setGatewayHeaders(h, q)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(unauthorizedBody)))
	w.WriteHeader(http.StatusUnauthorized)
	m, _ := io.WriteString(w, unauthorizedBody)
	q.bytesOut += int64(m)
}

// setRetryAfter sets both retry-after (whole seconds, rounded up) and
// retry-after-ms, as the SDKs read them.
func setRetryAfter(h http.Header, d time.Duration) {
	if d < 0 {
		d = 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	secs := (d + time.Second - 1) / time.Second
	h.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	h.Set("Retry-After-Ms", strconv.FormatInt(int64(ms), 10))
}

// setGatewayHeaders sets llmgate's own headers on a response the gateway
// makes itself: attempts so far, the trail, and the last backend tried;
// and x-request-id, which the SDKs report with an error (an upstream's
// answer carries its own), set to the gateway's request id.
func setGatewayHeaders(h http.Header, q *request) {
	h["X-Request-Id"] = h["X-Llmgate-Request-Id"]
	h["X-Llmgate-Attempts"] = attemptsValue(q.attempts)
	h["X-Llmgate-Backend"] = []string{lastBackend(q)}
	h["X-Llmgate-Trail"] = []string{string(q.trail)}
}
