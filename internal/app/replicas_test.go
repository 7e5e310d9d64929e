package app_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/sim"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

// replicasYAML is a gateway in front of a backend "bad" (tried first:
// priority 1) and the simulator "good", sharing the Redis at url.
func replicasYAML(url, bad, good string) string {
	return fmt.Sprintf(`
keys: [{name: app, key: %s}]
admin: {key: %s}
store: {type: redis, url: %q}
routing: {circuit: {failures: 3, cooldown: 30s}}
backends:
  - {name: bad, url: %q, priority: 1}
  - {name: good, url: %q, priority: 2}
`, clientKey, adminKey, url, bad, good)
}

// TestReplicasRouteAroundABackendTogether: a backend one replica found
// throttled, or whose circuit it opened, is left alone by the other replica
// too — told at once over the store's channel, not at its next read of the
// store — and the other replica logs the circuit it took over.
func TestReplicasRouteAroundABackendTogether(t *testing.T) {
	t.Parallel()
	good := simServer(t, sim.Options{})
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		shown  func(t *testing.T, base string) bool // the other replica shows the state
	}{
		{"throttled", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		}, func(t *testing.T, base string) bool {
			b, _ := backendByName(getBackends(t, base), "bad")
			return b.ThrottledForMS > 20_000
		}},
		{"circuit open", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
		}, func(t *testing.T, base string) bool {
			b, _ := backendByName(getBackends(t, base), "bad")
			return b.Circuit == "open"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := redistest.Start(t) // a store of its own: the other case's state stays out
			var hits atomic.Int64
			bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				tc.answer(w)
			}))
			t.Cleanup(bad.Close)
			cfg := replicasYAML(rs.URL(), bad.URL, good.URL)
			g1, _ := serveLogged(t, cfg)
			g2, log2 := serveLogged(t, cfg)
			for i := 0; !tc.shown(t, g1.URL); i++ {
				if i == 10 {
					b, _ := backendByName(getBackends(t, g1.URL), "bad")
					t.Fatalf("the first replica never showed bad as %s: %+v", tc.name, b)
				}
				if res, body := chatCall(t, g1.URL, clientKey, smallChat); res.StatusCode != 200 {
					t.Fatalf("through the first replica: %d %s", res.StatusCode, body)
				}
			}
			// Well under the store's read every second.
			deadline := time.Now().Add(300 * time.Millisecond)
			for !tc.shown(t, g2.URL) {
				if time.Now().After(deadline) {
					t.Fatalf("the second replica did not show bad as %s within 300 ms", tc.name)
				}
				time.Sleep(5 * time.Millisecond)
			}
			before := hits.Load()
			for range 10 {
				res, body := chatCall(t, g2.URL, clientKey, smallChat)
				if res.StatusCode != 200 || res.Header.Get("X-Llmgate-Backend") != "good" || res.Header.Get("X-Llmgate-Attempts") != "1" {
					t.Fatalf("through the second replica: %d, backend %q, trail %q: %s", res.StatusCode,
						res.Header.Get("X-Llmgate-Backend"), res.Header.Get("X-Llmgate-Trail"), body)
				}
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("the second replica sent %d requests to bad, want none", n)
			}
			if tc.name == "circuit open" && !strings.Contains(log2.String(), `"reason":"opened by another replica"`) {
				t.Errorf("the second replica's log does not say it took over the open circuit:\n%s", log2.String())
			}
		})
	}
}
