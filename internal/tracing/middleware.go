package tracing

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/internal/apiop"
)

// Attribute keys of the gateway's own span attributes.
const (
	AttrBackend   = "llmgate.backend"
	AttrAttempt   = "llmgate.attempt"
	AttrAttempts  = "llmgate.attempts"
	AttrRequestID = "llmgate.request_id"
	AttrTrail     = "llmgate.trail"
	AttrModel     = "llmgate.model"
)

// requestTrace is what a request's upstream attempts share: their count.
type requestTrace struct {
	attempts atomic.Int32
}

type requestTraceKey struct{}

// Middleware wraps next (the proxy) with a server span per request. The
// span continues the trace of the client's traceparent, if any, and ends
// when next returns, streams included. Its attributes come from the
// gateway's response headers: backend, attempts, trail, request id.
func (t *Tracer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		route, model := routeOf(r.URL.Path)
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
		}
		if model != "" {
			attrs = append(attrs, attribute.String(AttrModel, model))
		}
		ctx, span := t.tr.Start(ctx, r.Method+" "+route,
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		ctx = context.WithValue(ctx, requestTraceKey{}, &requestTrace{})
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))

		if !span.IsRecording() {
			return
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		h := w.Header()
		for _, a := range [...]struct{ attr, header string }{
			{AttrBackend, "X-Llmgate-Backend"},
			{AttrRequestID, "X-Llmgate-Request-Id"},
			{AttrTrail, "X-Llmgate-Trail"},
		} {
			if v := h.Get(a.header); v != "" {
				span.SetAttributes(attribute.String(a.attr, v))
			}
		}
		if n, err := strconv.Atoi(h.Get("X-Llmgate-Attempts")); err == nil {
			span.SetAttributes(attribute.Int(AttrAttempts, n))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// routeOf names a request path's operation with the deployment replaced,
// so span names stay few and never carry a path a client wrote; it returns
// the deployment separately.
func routeOf(p string) (route, model string) {
	if st, dep, op, ok := apiop.Split(p); ok {
		pre := apiop.Prefixes[st]
		if st == apiop.Deployments {
			pre += "{deployment}/"
		}
		return pre + apiop.Label(op), dep
	}
	switch p {
	case "/healthz", "/readyz", "/metrics", "/status", "/admin/backends", "/admin/keys", "/admin/usage":
		return p, "" // the gateway's own, a fixed set
	}
	return apiop.Other, ""
}

// statusWriter records the status written through it. It keeps Flush
// (streams are flushed event by event) and unwraps for ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
