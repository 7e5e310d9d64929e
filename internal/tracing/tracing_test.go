package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/internal/tracing"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newTracer(t *testing.T, ratio float64) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(tracing.Options{Exporter: exp, SampleRatio: &ratio})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

// TestSpansNestAndPropagate runs a handler that makes two upstream calls
// through the traced transport, the second one streamed and read to its end.
func TestSpansNestAndPropagate(t *testing.T) {
	t.Parallel()
	tr, exp := newTracer(t, 1)
	var sent []string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.Header.Get("Traceparent"))
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("data: x\n\n")), Request: r}, nil
	})
	rt := tr.Transport(base)
	var original *http.Request
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 2 {
			out, _ := http.NewRequestWithContext(tr.WithBackend(r.Context(), "se"), http.MethodPost, "http://up.example/openai/x", nil)
			out.Header.Set("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
			original = out
			resp, err := rt.RoundTrip(out)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		w.Header().Set("X-Llmgate-Backend", "se")
		w.Header().Set("X-Llmgate-Attempts", "2")
		w.WriteHeader(http.StatusBadGateway)
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the middleware's writer lost http.Flusher")
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/openai/deployments/gpt-4o/chat/completions", nil))

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("spans: got %d, want 3", len(spans))
	}
	server := spans[2] // ended last
	if server.SpanKind != trace.SpanKindServer || server.Name != "POST /openai/deployments/{deployment}/chat/completions" {
		t.Fatalf("request span: got %s %q", server.SpanKind, server.Name)
	}
	if server.Status.Code.String() != "Error" {
		t.Errorf("request span status for a 502: got %s, want Error", server.Status.Code)
	}
	for i, s := range spans[:2] {
		if s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("attempt %d: got kind %s parent %s, want a client child of %s", i+1, s.SpanKind, s.Parent.SpanID(), server.SpanContext.SpanID())
		}
		want := "00-" + server.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
		if sent[i] != want {
			t.Errorf("attempt %d traceparent: got %q, want %q", i+1, sent[i], want)
		}
	}
	if got := original.Header.Get("Traceparent"); got != "00-11111111111111111111111111111111-2222222222222222-01" {
		t.Errorf("the caller's request was modified: traceparent %q", got)
	}
}

func TestUntracedRequestsPassThrough(t *testing.T) {
	t.Parallel()
	tr, exp := newTracer(t, 1)
	var got *http.Request
	rt := tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	req := httptest.NewRequest(http.MethodGet, "http://up.example/health", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if got != req || len(exp.GetSpans()) != 0 {
		t.Errorf("a request outside a traced one: got a copy or %d spans, want it passed as is", len(exp.GetSpans()))
	}
}

func TestClientSampledOutIsHonoured(t *testing.T) {
	t.Parallel()
	tr, exp := newTracer(t, 1)
	var sent string
	rt := tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header.Get("Traceparent")
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://up.example/x", nil)
		if _, err := rt.RoundTrip(out); err != nil {
			t.Error(err)
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/openai/models", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("spans for a request the client sampled out: got %d, want 0", n)
	}
	if !strings.HasPrefix(sent, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(sent, "-00") {
		t.Errorf("upstream traceparent: got %q, want the client's trace, not sampled", sent)
	}
}

// With SampleRatio 0 no trace of our own starts, but a caller's sampled
// trace is still recorded and continued upstream.
func TestZeroRatioFollowsOnlySampledCallers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, traceparent string
		spans             int
	}{
		{name: "no caller trace", spans: 0},
		{name: "caller sampled", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", spans: 2},
		{name: "caller not sampled", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", spans: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, exp := newTracer(t, 0)
			rt := tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			}))
			h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://up.example/x", nil)
				resp, err := rt.RoundTrip(out)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}))
			req := httptest.NewRequest(http.MethodGet, "/openai/models", nil)
			if tc.traceparent != "" {
				req.Header.Set("Traceparent", tc.traceparent)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if n := len(exp.GetSpans()); n != tc.spans {
				t.Errorf("spans: got %d, want %d", n, tc.spans)
			}
		})
	}
}

func TestNewRefusesARatioOutOfRange(t *testing.T) {
	t.Parallel()
	for _, r := range []float64{-0.5, 1.5, math.NaN()} {
		if _, err := tracing.New(tracing.Options{Exporter: tracetest.NewInMemoryExporter(), SampleRatio: &r}); err == nil {
			t.Errorf("New with sample ratio %v: got nil error", r)
		}
	}
}

func TestNewChecksTheEndpoint(t *testing.T) {
	t.Parallel()
	for _, ep := range []string{"", "127.0.0.1:4318", "ftp://collector"} {
		if _, err := tracing.New(tracing.Options{Endpoint: ep}); err == nil {
			t.Errorf("New with endpoint %q: got nil error", ep)
		}
	}
	tr, err := tracing.New(tracing.Options{Endpoint: "http://127.0.0.1:4318"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown with nothing to export: %v", err)
	}
}

func TestExternalProvider(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr, err := tracing.New(tracing.Options{Provider: tp})
	if err != nil {
		t.Fatal(err)
	}
	tr.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/models", nil))
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "GET /v1/models" {
		t.Fatalf("spans: got %v, want GET /v1/models", spans)
	}
}

// TestOTLPExport sends the spans to an OTLP/HTTP collector on shutdown.
func TestOTLPExport(t *testing.T) {
	t.Parallel()
	got := make(chan string, 4)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type") + " " + strconv.Itoa(len(b))
	}))
	t.Cleanup(collector.Close)
	tr, err := tracing.New(tracing.Options{Endpoint: collector.URL, ServiceName: "llmgate-otlp-test"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/models", nil))
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "POST /v1/traces application/x-protobuf ") || strings.HasSuffix(req, " 0") {
			t.Errorf("collector got %q, want a protobuf POST to /v1/traces", req)
		}
	default:
		t.Fatal("the collector received nothing")
	}
}

// TestExportErrorsLoggedAsJSON: a collector that refuses the spans is
// reported in the gateway's log (JSON), once per tracing.ErrorEvery, not as
// OpenTelemetry's default plain line on stderr. Not parallel: the handler
// is OpenTelemetry's one global.
func TestExportErrorsLoggedAsJSON(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "no", http.StatusBadRequest) // not retried by the exporter
	}))
	t.Cleanup(collector.Close)
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	tr, err := tracing.New(tracing.Options{Endpoint: collector.URL, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tr.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/models", nil))
	_ = tr.Shutdown(context.Background()) // the last batch's export fails
	otel.Handle(errors.New("a second failure, within ErrorEvery"))

	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var line struct{ Level, Msg, Error string }
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &line) != nil {
		t.Fatalf("log: got %q, want one JSON line", out)
	}
	if line.Level != "WARN" || line.Msg != "tracing export failed" || !strings.Contains(line.Error, "400") {
		t.Errorf("log line: got %+v, want a warning with the collector's 400", line)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
