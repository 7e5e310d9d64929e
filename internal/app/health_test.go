package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestActiveHealthCheckOpensAndClosesCircuit: with health_check set, a
// backend that fails its probes has its circuit opened with no client
// traffic at all, and closed again once the probes succeed.
func TestActiveHealthCheckOpensAndClosesCircuit(t *testing.T) {
	var failing atomic.Bool
	var probes atomic.Int64
	failing.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/openai/models" {
			probes.Add(1)
			if r.Header.Get("Api-Key") != "bk" || r.URL.Query().Get("api-version") != "2024-02-01" {
				t.Errorf("probe without the backend's credential or query: %v %v", r.Header, r.URL)
			}
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(up.Close)
	g := serveGateway(t, fmt.Sprintf(`
keys: [{name: k, key: client}]
admin: {key: admin-secret}
routing: {circuit: {failures: 3, cooldown: 200ms}}
backends:
  - name: probed
    url: %s
    api_key: bk
    health_check: {path: "/openai/models?api-version=2024-02-01", interval: 50ms, timeout: 1s}
`, up.URL))
	state := func() string {
		req, _ := http.NewRequest("GET", g.URL+"/admin/backends", nil)
		req.Header.Set("api-key", "admin-secret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			Backends []struct {
				Name    string `json:"name"`
				Circuit string `json:"circuit"`
			} `json:"backends"`
		}
		if err := jsonDecode(res.Body, &out); err != nil || len(out.Backends) != 1 {
			t.Fatalf("/admin/backends: %v %+v", err, out)
		}
		return out.Backends[0].Circuit
	}
	waitState := func(want string) {
		deadline := time.Now().Add(5 * time.Second)
		for state() != want {
			if time.Now().After(deadline) {
				t.Fatalf("circuit %q, want %q after %d probes", state(), want, probes.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitState("open")
	failing.Store(false)
	waitState("closed")
	// The health check's changes are counted like the traffic's, the
	// cool-down's end that lets its probe through included.
	_, metrics := get(t, g.URL+"/metrics")
	for _, want := range []string{`llmgate_circuit_transitions_total{backend="probed",to="open"}`, `llmgate_circuit_transitions_total{backend="probed",to="closed"} 1`,
		`llmgate_circuit_transitions_total{backend="probed",to="half_open"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: want %s:\n%s", want, grepLines(metrics, "llmgate_circuit_transitions_total"))
		}
	}
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
