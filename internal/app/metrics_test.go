package app_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
)

// adminKey is the admin key of the ops tests' configs.
const adminKey = "adm-ADMIN-SECRET-5c1e77aa"

// opsStreamBody asks for a streamed chat completion.
const opsStreamBody = `{"messages":[{"role":"user","content":"Hi"}],"stream":true,"max_tokens":16}`

// opsConfig parses a config whose client key is ${CLIENT_KEY} and whose
// admin key is ${ADMIN_KEY}, resolved from the tests' constants.
func opsConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	env := map[string]string{"CLIENT_KEY": clientKey, "ADMIN_KEY": adminKey}
	cfg, err := config.Parse("ops.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return cfg
}

// opsHead is the start of every ops test config: the client key and the admin key.
const opsHead = "listen: 127.0.0.1:0\nkeys:\n  - name: " + keyName + "\n    key: ${CLIENT_KEY}\nadmin:\n  key: ${ADMIN_KEY}\nretry:\n  count: 3\n  interval: 1ms\n"

// opsGateway is an App behind an httptest server, logging JSON to a buffer.
type opsGateway struct {
	App *app.App
	Srv *plainServer
	Log *syncBuffer
}

func startOps(t testing.TB, cfg *config.Config, opts app.Options) *opsGateway {
	t.Helper()
	log := &syncBuffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(log, nil))
	a, err := app.New(cfg, opts)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	srv := servePlain(t, a)
	t.Cleanup(srv.Close)
	return &opsGateway{App: a, Srv: srv, Log: log}
}

// send makes one API request with the client key and reads the whole answer.
func (g *opsGateway) send(t testing.TB, path, body string) (*http.Response, string) {
	t.Helper()
	return sendTo(t, g.Srv.URL, path, body, clientKey)
}

func sendTo(t testing.TB, base, path, body, key string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp, string(b)
}

// adminGet GETs an admin path with key ("" for none).
func adminGet(t testing.TB, base, path, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if key != "" {
		req.Header.Set("api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads /metrics with the admin key through Prometheus' own text parser.
func scrape(t testing.TB, base string) families {
	t.Helper()
	status, body := adminGet(t, base, "/metrics", adminKey)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: got %d %s, want 200", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, body)
	}
	return fams
}

type families map[string]*dto.MetricFamily

// find returns the series of family name whose labels include want.
func (f families) find(name string, want map[string]string) []*dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.Metric {
		match := 0
		for _, lp := range m.Label {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match == len(want) {
			out = append(out, m)
		}
	}
	return out
}

// value sums the counter, gauge or histogram count of the matching series.
func (f families) value(name string, want map[string]string) float64 {
	total := 0.0
	for _, m := range f.find(name, want) {
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// scrapeUntil scrapes until cond holds or 5s pass: the gateway reports a
// request when its handler returns, a moment after the client has the answer.
func scrapeUntil(t testing.TB, base string, what string, cond func(families) bool) families {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := scrape(t, base)
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lbl = map[string]string

func TestMetricsMatchScriptedTraffic(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	// a is tried first (priority 1); b takes what a fails.
	a := rec.upstream(t, "a", sequence(
		ok(), // 1: plain request
		respond(http.StatusServiceUnavailable, `{"error":{"code":"503","message":"busy"}}`),                        // 2: retried on b
		sse(chunk(0, "tok"), chunk(1, "tok"), chunk(2, "tok"), doneEvent),                                          // 3: stream
		respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"slow down"}}`, "Retry-After", "30"), // 6: retried on b
	))
	b := rec.upstream(t, "b", ok())
	cfg := opsConfig(t, opsHead+`backends:
  - name: a
    url: `+a.URL+`
    deployments: {gpt-4o: gpt-4o}
  - name: b
    url: `+b.URL+`
    priority: 2
    deployments: {gpt-4o: gpt-4o}
`)
	g := startOps(t, cfg, app.Options{})

	steps := []struct {
		name, path, body, key string
		want                  int
	}{
		{"plain", chatPath, chatBody, clientKey, 200},
		{"retried after 503", chatPath, chatBody, clientKey, 200},
		{"stream", chatPath, opsStreamBody, clientKey, 200},
		{"no key", chatPath, chatBody, "", 401},
		{"unknown model", "/openai/deployments/no-such-model/chat/completions?api-version=2024-10-21", chatBody, clientKey, 404},
		{"retried after 429", chatPath, chatBody, clientKey, 200},
	}
	for _, s := range steps {
		resp, body := sendTo(t, g.Srv.URL, s.path, s.body, s.key)
		if resp.StatusCode != s.want {
			t.Fatalf("%s: got %d %s, want %d", s.name, resp.StatusCode, body, s.want)
		}
		if s.name == "stream" && !strings.Contains(body, "[DONE]") {
			t.Fatalf("stream: got %q, want it to end with [DONE]", body)
		}
	}
	if got := rec.Backends(); strings.Join(got, ",") != "a,a,b,a,a,b" {
		t.Fatalf("upstream calls: got %v, want a,a,b,a,a,b", got)
	}

	f := scrapeUntil(t, g.Srv.URL, "6 requests", func(f families) bool {
		return f.value("llmgate_requests_total", nil) == 6
	})
	chat := "chat/completions"
	checks := []struct {
		name   string
		labels lbl
		want   float64
	}{
		{"llmgate_requests_total", lbl{"route": chat, "model": "gpt-4o", "key": keyName, "backend": "a", "status": "200"}, 2},
		{"llmgate_requests_total", lbl{"route": chat, "model": "gpt-4o", "key": keyName, "backend": "b", "status": "200"}, 2},
		{"llmgate_requests_total", lbl{"key": "none", "backend": "none", "status": "401"}, 1},
		{"llmgate_requests_total", lbl{"model": "other", "key": keyName, "backend": "none", "status": "404"}, 1},
		{"llmgate_upstream_attempts_total", lbl{"backend": "a", "outcome": "ok"}, 2},
		{"llmgate_upstream_attempts_total", lbl{"backend": "a", "outcome": "5xx"}, 1},
		{"llmgate_upstream_attempts_total", lbl{"backend": "a", "outcome": "429"}, 1},
		{"llmgate_upstream_attempts_total", lbl{"backend": "b", "outcome": "ok"}, 2},
		{"llmgate_upstream_attempts_total", nil, 6},
		{"llmgate_upstream_retries_total", lbl{"backend": "a", "reason": "5xx"}, 1},
		{"llmgate_upstream_retries_total", lbl{"backend": "a", "reason": "429"}, 1},
		{"llmgate_upstream_retries_total", nil, 2},
		{"llmgate_request_duration_seconds", nil, 6},
		{"llmgate_request_duration_seconds", lbl{"stream": "true"}, 1},
		{"llmgate_time_to_first_byte_seconds", lbl{"model": "gpt-4o", "stream": "true"}, 1},
		{"llmgate_upstream_latency_seconds", lbl{"backend": "a"}, 4},
		{"llmgate_upstream_latency_seconds", lbl{"backend": "b"}, 2},
		// a asked not to be called for 30s; b is fine.
		{"llmgate_backend_available", lbl{"backend": "a"}, 0},
		{"llmgate_backend_available", lbl{"backend": "b"}, 1},
		{"llmgate_backend_circuit_open", lbl{"backend": "a"}, 0},
		{"llmgate_backend_inflight", nil, 0},
		// Tokens: the upstreams' usage (5 prompt, 3 completion per answer).
		{"llmgate_tokens_total", lbl{"key": keyName, "model": "gpt-4o", "backend": "a", "type": "prompt"}, 5},
		{"llmgate_tokens_total", lbl{"key": keyName, "model": "gpt-4o", "backend": "b", "type": "completion"}, 6},
	}
	for _, c := range checks {
		if got := f.value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	until := f.value("llmgate_backend_throttled_until_seconds", lbl{"backend": "a"})
	if now := float64(time.Now().Unix()); until < now+20 || until > now+31 {
		t.Errorf("llmgate_backend_throttled_until_seconds{backend=a}: got %v, want about now+30 (%v)", until, now+30)
	}
	if got := f.value("llmgate_backend_throttled_until_seconds", lbl{"backend": "b"}); got != 0 {
		t.Errorf("llmgate_backend_throttled_until_seconds{backend=b}: got %v, want 0", got)
	}
	// Label values are bounded: no raw path and no key anywhere.
	_, raw := adminGet(t, g.Srv.URL, "/metrics", adminKey)
	for _, bad := range []string{clientKey, "no-such-model", "/openai/", adminKey} {
		if strings.Contains(raw, bad) {
			t.Errorf("/metrics contains %q", bad)
		}
	}
}

func TestMetricsEndpointAccess(t *testing.T) {
	t.Parallel()
	up := newRecorder().upstream(t, "a", ok())
	backends := "backends:\n  - name: a\n    url: " + up.URL + "\n"
	tests := []struct {
		name  string
		extra string
		key   string
		want  int
	}{
		{"admin key", "", adminKey, 200},
		{"public by default", "", "", 200},
		{"private: admin key", "  metrics_public: false\n", adminKey, 200},
		{"private: no key", "  metrics_public: false\n", "", 401},
		{"private: client key", "  metrics_public: false\n", clientKey, 401},
		{"public", "  metrics_public: true\n", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			yaml := strings.Replace(opsHead, "admin:\n  key: ${ADMIN_KEY}\n", "admin:\n  key: ${ADMIN_KEY}\n"+tc.extra, 1) + backends
			g := startOps(t, opsConfig(t, yaml), app.Options{})
			if got, body := adminGet(t, g.Srv.URL, "/metrics", tc.key); got != tc.want {
				t.Errorf("GET /metrics: got %d %s, want %d", got, body, tc.want)
			}
		})
	}
	t.Run("no admin key", func(t *testing.T) {
		t.Parallel()
		yaml := strings.Replace(opsHead, "admin:\n  key: ${ADMIN_KEY}\n", "", 1) + backends
		g := startOps(t, opsConfig(t, yaml), app.Options{})
		for _, path := range []string{"/status", "/admin/backends", "/admin/keys", "/debug/pprof/"} {
			if got, _ := adminGet(t, g.Srv.URL, path, adminKey); got != http.StatusNotFound {
				t.Errorf("GET %s without admin.key: got %d, want 404", path, got)
			}
		}
		if got, _ := adminGet(t, g.Srv.URL, "/metrics", ""); got != http.StatusOK {
			t.Errorf("GET /metrics without admin.key: got %d, want 200 (public by default)", got)
		}
	})
}
