package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/tracing"
)

// A client's W3C trace context: trace 4bf9…4736, its span 00f0…02b7, sampled.
const (
	clientTraceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID     = "00f067aa0ba902b7"
	clientTraceparen = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// waitSpans waits until the exporter holds n spans.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans := exp.GetSpans()
		if len(spans) >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans: got %d, want %d", len(spans), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestTraceHasRequestSpanAndOneChildPerAttempt(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(tracing.Options{Exporter: exp, ServiceName: "llmgate-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	rec := newRecorder()
	a := rec.upstream(t, "a", sequence(
		respond(http.StatusServiceUnavailable, `{"error":{"code":"503","message":"busy"}}`),
		sse(chunk(0, "tok"), chunk(1, "tok"), doneEvent),
	))
	b := rec.upstream(t, "b", ok())
	g := startOps(t, opsConfig(t, opsHead+"backends:\n  - name: a\n    url: "+a.URL+"\n  - name: b\n    url: "+b.URL+"\n    priority: 2\n"), app.Options{Tracer: tr})

	req := g.requestWith(t, chatBody)
	req.Header.Set("traceparent", clientTraceparen)
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: got %d %s", resp.StatusCode, body)
	}
	spans := waitSpans(t, exp, 3)

	var server tracetest.SpanStub
	var attempts []tracetest.SpanStub
	for _, s := range spans {
		switch s.SpanKind {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			attempts = append(attempts, s)
		}
	}
	if got := server.SpanContext.TraceID().String(); got != clientTraceID {
		t.Errorf("request span trace: got %s, want the client's %s", got, clientTraceID)
	}
	if got := server.Parent.SpanID().String(); got != clientSpanID {
		t.Errorf("request span parent: got %s, want the client's span %s", got, clientSpanID)
	}
	if got := server.Name; got != "POST /openai/deployments/{deployment}/chat/completions" {
		t.Errorf("request span name: got %q", got)
	}
	if got := attr(server, tracing.AttrAttempts).AsInt64(); got != 2 {
		t.Errorf("request span %s: got %d, want 2", tracing.AttrAttempts, got)
	}
	if got := attr(server, "http.response.status_code").AsInt64(); got != 200 {
		t.Errorf("request span status: got %d, want 200", got)
	}
	if len(attempts) != 2 {
		t.Fatalf("attempt spans: got %d, want 2", len(attempts))
	}
	calls := rec.Calls()
	for i, want := range []struct {
		backend string
		status  int64
	}{{"a", 503}, {"b", 200}} {
		var s tracetest.SpanStub
		for _, x := range attempts {
			if attr(x, tracing.AttrAttempt).AsInt64() == int64(i+1) {
				s = x
			}
		}
		if got := attr(s, tracing.AttrBackend).AsString(); got != want.backend {
			t.Errorf("attempt %d backend: got %q, want %q", i+1, got, want.backend)
		}
		if got := attr(s, "http.response.status_code").AsInt64(); got != want.status {
			t.Errorf("attempt %d status: got %d, want %d", i+1, got, want.status)
		}
		if s.Parent.SpanID() != server.SpanContext.SpanID() || s.SpanContext.TraceID() != server.SpanContext.TraceID() {
			t.Errorf("attempt %d: parent %s, want the request span %s", i+1, s.Parent.SpanID(), server.SpanContext.SpanID())
		}
		// The upstream got this attempt's context, not the client's.
		wantTP := "00-" + clientTraceID + "-" + s.SpanContext.SpanID().String() + "-01"
		if got := calls[i].Header.Get("Traceparent"); got != wantTP {
			t.Errorf("attempt %d: upstream traceparent %q, want %q", i+1, got, wantTP)
		}
	}

	// A stream: its one attempt span lasts until the stream ends.
	exp.Reset()
	resp, body = do(t, g.requestWith(t, opsStreamBody))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "[DONE]") {
		t.Fatalf("stream: got %d %s", resp.StatusCode, body)
	}
	spans = waitSpans(t, exp, 2)
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindClient && attr(s, tracing.AttrBackend).AsString() != "a" {
			t.Errorf("stream attempt backend: got %q, want a", attr(s, tracing.AttrBackend).AsString())
		}
		if s.EndTime.IsZero() {
			t.Errorf("span %q not ended", s.Name)
		}
	}
	if len(spans) != 2 {
		t.Errorf("stream spans: got %d, want 2 (request and one attempt)", len(spans))
	}
}

func TestTracingOffLeavesRequestsAlone(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", ok())
	g := startOps(t, opsConfig(t, opsHead+"backends:\n  - name: a\n    url: "+a.URL+"\n"), app.Options{})
	if resp, body := do(t, g.requestWith(t, chatBody)); resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: got %d %s", resp.StatusCode, body)
	}
	if tp := rec.Calls()[0].Header.Get("Traceparent"); tp != "" {
		t.Errorf("upstream traceparent with tracing off: got %q, want none", tp)
	}
}

// requestWith builds a chat request carrying the client key.
func (g *opsGateway) requestWith(t testing.TB, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.Srv.URL+chatPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", clientKey)
	return req
}

// TestAttemptSpansNameTheirBackendWhenBackendsShareAURL: two deployments on
// one resource (PTU first, then pay-as-you-go) share the upstream's URL;
// each attempt's span still names the backend it went to.
func TestAttemptSpansNameTheirBackendWhenBackendsShareAURL(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(tracing.Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	rec := newRecorder()
	up := rec.upstream(t, "resource", sequence(
		respond(http.StatusServiceUnavailable, `{"error":{"code":"503","message":"busy"}}`),
		respond(http.StatusOK, `{"id":"x","object":"chat.completion","choices":[]}`),
	))
	g := startOps(t, opsConfig(t, opsHead+"backends:\n  - name: ptu\n    url: "+up.URL+"\n  - name: paygo\n    url: "+up.URL+"\n    priority: 2\n"), app.Options{Tracer: tr})

	resp, body := do(t, g.requestWith(t, chatBody))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: got %d %s", resp.StatusCode, body)
	}
	spans := waitSpans(t, exp, 3)
	got := map[int64]string{}
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindClient {
			got[attr(s, tracing.AttrAttempt).AsInt64()] = s.Name + " / " + attr(s, tracing.AttrBackend).AsString()
		}
	}
	if got[1] != "upstream ptu / ptu" || got[2] != "upstream paygo / paygo" || len(got) != 2 {
		t.Errorf("attempt spans (name / %s): got %v, want attempt 1 ptu and attempt 2 paygo", tracing.AttrBackend, got)
	}
}
