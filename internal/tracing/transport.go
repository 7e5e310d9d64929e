package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Transport wraps base with a client span per upstream attempt, child of
// the request's span, and sends the attempt's trace context upstream in
// traceparent (W3C). The span is named for the backend that WithBackend
// put in the request's context (the URL's host without one). Requests
// outside a traced request pass through untouched. The span ends when the
// response body is read to its end or closed, so a stream's span lasts as
// long as the stream.
func (t *Tracer) Transport(base http.RoundTripper) http.RoundTripper {
	return &transport{t: t, base: base}
}

type transport struct {
	t    *Tracer
	base http.RoundTripper
}

type backendKey struct{}

// WithBackend names the backend an upstream request made with ctx goes to,
// for its attempt span. Only the caller knows it: several backends may
// share one URL (two deployments on one Azure resource).
func (t *Tracer) WithBackend(ctx context.Context, backend string) context.Context {
	return context.WithValue(ctx, backendKey{}, backend)
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return tr.base.RoundTrip(req)
	}
	name, _ := ctx.Value(backendKey{}).(string)
	if name == "" {
		name = req.URL.Host
	}
	n := 0
	if rt, ok := ctx.Value(requestTraceKey{}).(*requestTrace); ok {
		n = int(rt.attempts.Add(1))
	}
	ctx, span := tr.t.tr.Start(ctx, "upstream "+name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String(AttrBackend, name),
			attribute.Int(AttrAttempt, n),
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.path", req.URL.Path),
		))
	// A RoundTripper must not modify its request: send a copy carrying
	// the attempt's trace context instead of whatever the client sent.
	out := req.Clone(ctx)
	out.Header.Del("Traceparent")
	out.Header.Del("Tracestate")
	tr.t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "no response")
		span.End()
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// spanBody ends its span at the body's end, first error or close.
type spanBody struct {
	io.ReadCloser
	span trace.Span
	once sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil)
	return err
}

func (b *spanBody) end(err error) {
	b.once.Do(func() {
		if err != nil && !errors.Is(err, io.EOF) {
			b.span.RecordError(err)
			b.span.SetStatus(codes.Error, "body broken")
		}
		b.span.End()
	})
}
