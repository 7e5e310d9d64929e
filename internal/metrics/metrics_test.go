package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/llmgate/llmgate/internal/metrics"
	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/upstream"
)

// scrape serves the Gateway's handler and parses the answer with
// Prometheus' own text parser.
func scrape(t *testing.T, g *metrics.Gateway) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: got %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, rec.Body.String())
	}
	return fams
}

// value returns the value of the series of name with exactly labels
// (counter, gauge, or histogram sample count); ok is false if absent.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		match := true
		for _, lp := range m.Label {
			if want[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func expect(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(fams, name, labels...)
	if !ok || got != want {
		t.Errorf("%s%v: got %v (present %v), want %v", name, labels, got, ok, want)
	}
}

func TestGatewayCountsEvents(t *testing.T) {
	t.Parallel()
	g := metrics.New(metrics.Options{})
	g.Configure([]string{"gpt-4o"}, []string{"a", "b"})
	g.Attempt(&proxy.AttemptInfo{Backend: "a", Model: "gpt-4o", Outcome: proxy.OutcomeThrottled, Status: 429, Latency: 20 * time.Millisecond})
	g.Attempt(&proxy.AttemptInfo{Backend: "b", Model: "gpt-4o", Outcome: proxy.OutcomeOK, Status: 200, Retry: true, Latency: 30 * time.Millisecond,
		PrevBackend: "a", PrevOutcome: proxy.OutcomeThrottled})
	g.Request(&proxy.RequestInfo{Route: "chat/completions", Model: "gpt-4o", Key: "team", Backend: "b", Status: 200,
		Attempts: 2, Stream: true, Duration: time.Second, TTFB: 100 * time.Millisecond, PromptTokens: 7, CompletionTokens: 11})
	g.Request(&proxy.RequestInfo{Route: "other", Status: 401, Duration: time.Millisecond, TTFB: time.Millisecond})
	g.Transition(upstream.Transition{Backend: "a", From: upstream.Closed, To: upstream.Open})
	g.Reloaded(false)

	f := scrape(t, g)
	expect(t, f, 1, "llmgate_requests_total", "route", "chat/completions", "model", "gpt-4o", "key", "team", "backend", "b", "status", "200")
	expect(t, f, 1, "llmgate_requests_total", "route", "other", "model", "none", "key", "none", "backend", "none", "status", "401")
	expect(t, f, 1, "llmgate_request_duration_seconds", "route", "chat/completions", "model", "gpt-4o", "stream", "true")
	expect(t, f, 1, "llmgate_time_to_first_byte_seconds", "route", "chat/completions", "model", "gpt-4o", "stream", "true")
	expect(t, f, 7, "llmgate_tokens_total", "key", "team", "model", "gpt-4o", "backend", "b", "type", "prompt")
	expect(t, f, 11, "llmgate_tokens_total", "key", "team", "model", "gpt-4o", "backend", "b", "type", "completion")
	expect(t, f, 18, "llmgate_tokens_total", "key", "team", "model", "gpt-4o", "backend", "b", "type", "total")
	expect(t, f, 1, "llmgate_upstream_attempts_total", "backend", "a", "outcome", "429")
	expect(t, f, 1, "llmgate_upstream_attempts_total", "backend", "b", "outcome", "ok")
	expect(t, f, 1, "llmgate_upstream_retries_total", "backend", "a", "reason", "429")
	expect(t, f, 1, "llmgate_upstream_latency_seconds", "backend", "a")
	expect(t, f, 1, "llmgate_circuit_transitions_total", "backend", "a", "to", "open")
	expect(t, f, 1, "llmgate_config_reloads_total", "result", "rejected")
	expect(t, f, 0, "llmgate_config_reloads_total", "result", "ok")
	if _, ok := value(f, "go_goroutines"); !ok {
		t.Error("go_goroutines missing: the Go collector is not registered")
	}

	usage := g.KeyUsage()
	if len(usage) != 1 || usage[0] != (metrics.KeyUsage{Key: "team", Model: "gpt-4o", Requests: 1, PromptTokens: 7, CompletionTokens: 11}) {
		t.Errorf("KeyUsage: got %+v", usage)
	}
	r := g.Recent()
	if r["a"].Throttles != 1 || r["b"].Attempts != 1 || r["b"].Latency != 30*time.Millisecond || r["a"].Share != 0.5 {
		t.Errorf("Recent: got %+v", r)
	}
	// A reload that drops backend a: the live split covers b alone.
	g.Configure([]string{"gpt-4o"}, []string{"b"})
	if r := g.Recent(); len(r) != 1 || r["b"].Share != 1 {
		t.Errorf("Recent after a's removal: got %+v, want b alone with share 1", r)
	}
}

// /metrics answers a scraper that asks for OpenMetrics (Prometheus does,
// first) in OpenMetrics.
func TestHandlerServesOpenMetrics(t *testing.T) {
	t.Parallel()
	g := metrics.New(metrics.Options{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type: got %q, want OpenMetrics", ct)
	}
}

func TestLabelsAreBounded(t *testing.T) {
	t.Parallel()
	g := metrics.New(metrics.Options{})
	g.Configure([]string{"gpt-4o"}, []string{"a"})
	req := func(model, backend string) {
		g.Request(&proxy.RequestInfo{Route: "chat/completions", Model: model, Key: "k", Backend: backend, Status: 200})
	}
	// A name no backend was asked for stays "other".
	req("made-up", "a")
	// Names that reached a backend (a backend serving every name) pass,
	// up to 100 of them.
	for i := range 150 {
		name := fmt.Sprintf("m-%03d", i)
		g.Attempt(&proxy.AttemptInfo{Backend: "a", Model: name, Outcome: proxy.OutcomeOK})
		req(name, "a")
	}
	g.Attempt(&proxy.AttemptInfo{Backend: "a", Model: "bad\xff", Outcome: proxy.OutcomeOK})
	req("bad\xff", "a")
	req("gpt-4o", "gone") // a backend not configured

	f := scrape(t, g)
	models := map[string]bool{}
	for _, m := range f["llmgate_requests_total"].Metric {
		for _, lp := range m.Label {
			if lp.GetName() == "model" {
				models[lp.GetValue()] = true
			}
		}
	}
	if len(models) != 102 || !models["other"] || !models["gpt-4o"] || !models["m-099"] || models["m-100"] || models["made-up"] {
		t.Errorf("model labels: got %d values, want gpt-4o, 100 admitted names and other", len(models))
	}
	expect(t, f, 1+50+1, "llmgate_requests_total", "route", "chat/completions", "model", "other", "key", "k", "backend", "a", "status", "200")
	expect(t, f, 1, "llmgate_requests_total", "route", "chat/completions", "model", "gpt-4o", "key", "k", "backend", "other", "status", "200")
}

func TestRetriesCountedByReason(t *testing.T) {
	t.Parallel()
	g := metrics.New(metrics.Options{})
	g.Configure(nil, []string{"a", "b", "c:x"})
	// Each request's attempts, in order: a retry's reason is the outcome of
	// the attempt it retries.
	for _, attempts := range [][][2]string{
		{{"a", proxy.OutcomeOK}},
		{{"a", proxy.OutcomeThrottled}, {"b", proxy.OutcomeOK}},
		{{"a", proxy.OutcomeServerError}, {"b", proxy.OutcomeServerError}, {"a", proxy.OutcomeServerError}},
		{{"a", proxy.OutcomeTimeout}, {"b", proxy.OutcomeConnection}, {"c:x", proxy.OutcomeOK}},
		{{"a", proxy.OutcomeErrorEvent}, {"b", proxy.OutcomeStreamCut}, {"a", proxy.OutcomeAuth}, {"b", proxy.OutcomeOK}},
	} {
		prevB, prevO := "", ""
		for i, at := range attempts {
			g.Attempt(&proxy.AttemptInfo{Backend: at[0], Outcome: at[1], Retry: i > 0, PrevBackend: prevB, PrevOutcome: prevO})
			prevB, prevO = at[0], at[1]
		}
	}
	f := scrape(t, g)
	for _, c := range []struct {
		backend, reason string
		want            float64
	}{
		{"a", "429", 1}, {"a", "5xx", 1}, {"b", "5xx", 1}, {"a", "timeout", 1}, {"b", "connection", 1},
		{"a", "error_event", 1}, {"b", "error_event", 1}, {"a", "auth", 1},
	} {
		expect(t, f, c.want, "llmgate_upstream_retries_total", "backend", c.backend, "reason", c.reason)
	}
	total := 0.0
	for _, m := range f["llmgate_upstream_retries_total"].Metric {
		total += m.Counter.GetValue()
	}
	if total != 8 {
		t.Errorf("retries total = %v, want 8", total)
	}
}

func TestBackendStateIsReadAtScrape(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	reg := upstream.NewRegistry()
	a, b := reg.Get("a"), reg.Get("b")
	a.Throttle(now.Add(30 * time.Second))
	b.Configure(upstream.Settings{MaxInflight: 1})
	if _, ok := b.Acquire(now); !ok {
		t.Fatal("acquire b")
	}
	h := http.Header{}
	h.Set("X-Ratelimit-Remaining-Tokens", "1234")
	b.Observe(h, now)
	g := metrics.New(metrics.Options{Backends: reg, Now: func() time.Time { return now }})

	f := scrape(t, g)
	expect(t, f, 0, "llmgate_backend_available", "backend", "a")
	expect(t, f, float64(now.Unix()+30), "llmgate_backend_throttled_until_seconds", "backend", "a")
	expect(t, f, 0, "llmgate_backend_circuit_open", "backend", "a")
	expect(t, f, -1, "llmgate_backend_remaining_tokens", "backend", "a")
	expect(t, f, 0, "llmgate_backend_available", "backend", "b") // at its in-flight cap
	expect(t, f, 1, "llmgate_backend_inflight", "backend", "b")
	expect(t, f, 0, "llmgate_backend_throttled_until_seconds", "backend", "b")
	expect(t, f, 1234, "llmgate_backend_remaining_tokens", "backend", "b")
}

func TestEventsDoNotAllocate(t *testing.T) {
	g := metrics.New(metrics.Options{})
	g.Configure([]string{"gpt-4o"}, []string{"a"})
	ai := &proxy.AttemptInfo{Backend: "a", Model: "gpt-4o", Outcome: proxy.OutcomeOK, Status: 200, Latency: time.Millisecond}
	ri := &proxy.RequestInfo{Route: "chat/completions", Model: "gpt-4o", Key: "k", Backend: "a", Status: 200,
		Duration: time.Second, TTFB: time.Millisecond, PromptTokens: 3, CompletionTokens: 4}
	g.Attempt(ai)
	g.Request(ri)
	if n := testing.AllocsPerRun(200, func() { g.Attempt(ai); g.Request(ri) }); n != 0 {
		t.Errorf("allocations per attempt and request: got %v, want 0", n)
	}
}

func BenchmarkEvents(b *testing.B) {
	g := metrics.New(metrics.Options{})
	g.Configure([]string{"gpt-4o"}, []string{"a"})
	ai := &proxy.AttemptInfo{Backend: "a", Model: "gpt-4o", Outcome: proxy.OutcomeOK, Status: 200, Latency: time.Millisecond}
	ri := &proxy.RequestInfo{Route: "chat/completions", Model: "gpt-4o", Key: "k", Backend: "a", Status: 200, Duration: time.Second}
	b.ReportAllocs()
	for b.Loop() {
		g.Attempt(ai)
		g.Request(ri)
	}
}

// A backend whose credential was refused is out for its auth cool-down,
// which is no throttle: llmgate_backend_throttled_until_seconds stays 0.
func TestAuthCooldownIsNoThrottle(t *testing.T) {
	t.Parallel()
	reg := upstream.NewRegistry()
	reg.Get("a").Done(time.Now(), upstream.AuthFailed, time.Millisecond, false)
	g := metrics.New(metrics.Options{Backends: reg})
	f := scrape(t, g)
	expect(t, f, 0, "llmgate_backend_throttled_until_seconds", "backend", "a")
	expect(t, f, 0, "llmgate_backend_available", "backend", "a")
}
