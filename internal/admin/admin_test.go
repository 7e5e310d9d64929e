package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/admin"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/metrics"
	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/upstream"
)

const (
	adminKey  = "admin-key-0123456789"
	clientKey = "client-key-0123456789"
)

func newAdmin(t *testing.T, cfg *config.Config, reg *upstream.Registry, now time.Time) (*admin.Admin, *metrics.Gateway) {
	t.Helper()
	m := metrics.New(metrics.Options{Backends: reg, Now: func() time.Time { return now }})
	a := admin.New(admin.Options{
		Config:      func() *config.Config { return cfg },
		Backends:    reg,
		Metrics:     m,
		IsClientKey: func(k string) bool { return k == clientKey },
		Routes: map[string]http.Handler{"GET /admin/extra": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("extra"))
		})},
		Now: func() time.Time { return now },
	})
	return a, m
}

func serve(a http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

func TestAccess(t *testing.T) {
	t.Parallel()
	now := time.Now()
	private := false
	cfg := &config.Config{Admin: config.Admin{Key: adminKey, MetricsPublic: &private}}
	a, _ := newAdmin(t, cfg, upstream.NewRegistry(), now)
	tests := []struct {
		path string
		hdr  []string
		want int
	}{
		{"/admin/backends", nil, 401},
		{"/admin/backends", []string{"api-key", adminKey}, 200},
		{"/admin/backends", []string{"Authorization", "Bearer " + adminKey}, 200},
		{"/admin/backends", []string{"api-key", adminKey + "x"}, 401},
		{"/admin/backends", []string{"api-key", clientKey}, 401},
		{"/admin/keys", []string{"api-key", adminKey}, 200},
		{"/metrics", nil, 401},
		{"/metrics", []string{"api-key", clientKey}, 401},
		{"/metrics", []string{"api-key", adminKey}, 200},
		{"/status", nil, 401},
		{"/status", []string{"api-key", adminKey}, 200},
		{"/debug/pprof/", []string{"api-key", adminKey}, 200},
		{"/debug/pprof/heap", nil, 401},
		{"/admin/unknown", []string{"api-key", adminKey}, 404},
		{"/admin/extra", []string{"api-key", adminKey}, 200},
		{"/admin/extra", []string{"api-key", clientKey}, 401},
	}
	for _, tc := range tests {
		if got := serve(a, tc.path, tc.hdr...).Code; got != tc.want {
			t.Errorf("GET %s %v: got %d, want %d", tc.path, tc.hdr, got, tc.want)
		}
	}
	// A client key gets exactly what a wrong or missing key gets: the admin
	// endpoints tell nothing about which guesses are client keys.
	wrong := serve(a, "/admin/keys", "api-key", "not-a-key")
	for _, hdr := range [][]string{{"api-key", clientKey}, {"Authorization", "Bearer " + clientKey}, nil} {
		got := serve(a, "/admin/keys", hdr...)
		if got.Code != wrong.Code || got.Body.String() != wrong.Body.String() {
			t.Errorf("GET /admin/keys %v: got %d %s, want what a wrong key gets: %d %s", hdr, got.Code, got.Body, wrong.Code, wrong.Body)
		}
	}

	off := &config.Config{} // metrics are public unless admin.metrics_public is false
	b, _ := newAdmin(t, off, upstream.NewRegistry(), now)
	for path, want := range map[string]int{"/status": 404, "/admin/backends": 404, "/debug/pprof/": 404, "/metrics": 200} {
		if got := serve(b, path).Code; got != want {
			t.Errorf("no admin key, metrics public by default: GET %s: got %d, want %d", path, got, want)
		}
	}
	c, _ := newAdmin(t, &config.Config{Admin: config.Admin{Key: adminKey}}, upstream.NewRegistry(), now)
	for _, hdr := range [][]string{nil, {"api-key", clientKey}, {"api-key", adminKey}} {
		if got := serve(c, "/metrics", hdr...).Code; got != 200 {
			t.Errorf("metrics public by default: GET /metrics %v: got %d, want 200", hdr, got)
		}
	}
}

func TestOwns(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/status": true, "/status/": true, "/metrics": true, "/admin/backends": true, "/debug/pprof/heap": true,
		"/openai/deployments/x/chat/completions": false, "/v1/models": false, "/statusx": false, "/healthz": false,
	} {
		if got := admin.Owns(path); got != want {
			t.Errorf("Owns(%q): got %v, want %v", path, got, want)
		}
	}
}

func TestBackendStates(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	reg := upstream.NewRegistry()
	w0 := 0
	cfg := &config.Config{
		Admin: config.Admin{Key: adminKey},
		Keys:  []config.Key{{Name: "team", Team: "search"}, {Name: "idle"}},
		Backends: []config.Backend{
			{Name: "ok", Priority: 1}, {Name: "throttled", Priority: 1}, {Name: "open", Priority: 2, Weight: &w0},
			{Name: "full", Priority: 1, MaxInflight: 1}, {Name: "authfail", Priority: 1},
		},
	}
	for _, b := range cfg.Backends {
		reg.Get(b.Name).Configure(upstream.Settings{MaxInflight: b.MaxInflight, Circuit: upstream.Circuit{Failures: 1}})
	}
	reg.Get("throttled").Throttle(now.Add(12 * time.Second))
	st := reg.Get("open")
	if _, ok := st.Acquire(now); !ok {
		t.Fatal("acquire")
	}
	st.Done(now, upstream.Failed, time.Millisecond, false)
	if _, ok := reg.Get("full").Acquire(now); !ok {
		t.Fatal("acquire")
	}
	af := reg.Get("authfail")
	af.Acquire(now)
	af.Done(now, upstream.AuthFailed, time.Millisecond, false)

	a, m := newAdmin(t, cfg, reg, now)
	m.Configure(nil, []string{"ok", "throttled"})
	m.Attempt(&proxy.AttemptInfo{Backend: "ok", Outcome: proxy.OutcomeOK, Latency: 4 * time.Millisecond})
	m.Attempt(&proxy.AttemptInfo{Backend: "ok", Outcome: proxy.OutcomeOK, Latency: 8 * time.Millisecond})
	m.Attempt(&proxy.AttemptInfo{Backend: "throttled", Outcome: proxy.OutcomeThrottled})
	m.Request(&proxy.RequestInfo{Model: "gpt-4o", Key: "team", Status: 200, PromptTokens: 3, CompletionTokens: 5})
	m.Request(&proxy.RequestInfo{Model: "gpt-4o", Key: "gone", Status: 500})

	rec := serve(a, "/admin/backends", "api-key", adminKey)
	var r admin.BackendsReport
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ok": "available", "throttled": "throttled", "open": "circuit_open", "full": "at_capacity", "authfail": "auth_failed"}
	if len(r.Backends) != len(want) {
		t.Fatalf("backends: got %d, want %d", len(r.Backends), len(want))
	}
	for _, b := range r.Backends {
		if b.State != want[b.Name] {
			t.Errorf("%s: got state %q, want %q", b.Name, b.State, want[b.Name])
		}
	}
	if b := r.Backends[0]; b.Recent.Attempts != 2 || b.Recent.LatencyMS != 6 || b.Share < 0.66 || b.Share > 0.67 {
		t.Errorf("ok: got recent %+v share %v, want 2 attempts of 6ms mean and 2/3 of the traffic", b.Recent, b.Share)
	}
	if b := r.Backends[1]; b.ThrottledForMS != 12000 || b.Available {
		t.Errorf("throttled: got %+v, want 12s left", b)
	}
	if b := r.Backends[2]; b.Circuit != "open" || b.Weight != 0 || b.Priority != 2 {
		t.Errorf("open: got %+v", b)
	}

	rec = serve(a, "/admin/keys", "api-key", adminKey)
	var k admin.KeysReport
	if err := json.Unmarshal(rec.Body.Bytes(), &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Keys) != 3 {
		t.Fatalf("keys: got %s", rec.Body.String())
	}
	team, idle, gone := k.Keys[0], k.Keys[1], k.Keys[2]
	if team.Name != "team" || team.Team != "search" || team.Requests != 1 || team.PromptTokens != 3 || team.CompletionTokens != 5 ||
		len(team.Models) != 1 || team.Models[0].Model != "other" {
		t.Errorf("team: got %+v", team)
	}
	if idle.Name != "idle" || idle.Requests != 0 || !idle.Configured {
		t.Errorf("idle: got %+v", idle)
	}
	if gone.Name != "gone" || gone.Configured || gone.Errors != 1 {
		t.Errorf("gone: got %+v", gone)
	}
}
