package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/sim"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

// serveLogged starts a gateway from yaml with app.Serve (so its
// shared-state loop runs) and returns it with its log (JSON, debug level).
func serveLogged(t testing.TB, yaml string) (*served, *syncBuffer) {
	t.Helper()
	cfg, err := config.Parse("store.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	a, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	s := &served{URL: "http://" + ln.Addr().String(), App: a}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	return s, log
}

// waitBody polls path until its body contains want, for up to 5s.
func waitBody(t *testing.T, base, path, want string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body := get(t, base+path)
		if strings.Contains(body, want) {
			return status, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never said %q: last %d %q", path, want, status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthShowsStoreOutage: while Redis is unreachable, /healthz stays 200
// but says so and names the policy; /readyz is 503 under on_failure:
// closed and 200 "degraded" under open; llmgate_store_up is 0; the log
// says it once, as JSON. Both come back by themselves with Redis.
func TestHealthShowsStoreOutage(t *testing.T) {
	up := simServer(t, sim.Options{})
	for _, policy := range []string{"open", "closed"} {
		t.Run(policy, func(t *testing.T) {
			rs := redistest.Start(t)
			store := fmt.Sprintf("{type: redis, url: %q, timeout: 100ms, on_failure: %s}", rs.URL(), policy)
			g, log := serveLogged(t, keysYAML(store, up.URL, "  - {name: team, key: team-secret, rpm: 1000}"))
			if status, body := get(t, g.URL+"/healthz"); status != 200 || body != "ok\n" {
				t.Fatalf("/healthz with Redis up: got %d %q, want 200 \"ok\\n\"", status, body)
			}
			if status, body := get(t, g.URL+"/readyz"); status != 200 || body != "ready\n" {
				t.Fatalf("/readyz with Redis up: got %d %q, want 200 \"ready\\n\"", status, body)
			}

			rs.Stop()
			status, body := waitBody(t, g.URL, "/healthz", "unreachable")
			if status != 200 || !strings.Contains(body, "on_failure: "+policy) || !strings.Contains(body, "redis") {
				t.Errorf("/healthz with Redis down: got %d %q, want 200 naming redis and on_failure: %s", status, body, policy)
			}
			status, body = get(t, g.URL+"/readyz")
			wantStatus, wantPrefix := 200, "degraded: state store redis unreachable"
			if policy == "closed" {
				wantStatus, wantPrefix = 503, "not ready: state store redis unreachable"
			}
			if status != wantStatus || !strings.HasPrefix(body, wantPrefix) || !strings.Contains(body, "on_failure: "+policy) {
				t.Errorf("/readyz with Redis down: got %d %q, want %d %q... on_failure: %s", status, body, wantStatus, wantPrefix, policy)
			}
			f := scrape(t, g.URL)
			if v := f.value("llmgate_store_up", lbl{"store": "redis", "on_failure": policy}); v != 0 || len(f.find("llmgate_store_up", nil)) != 1 {
				t.Errorf("llmgate_store_up with Redis down: got %v (%d series), want 0", v, len(f.find("llmgate_store_up", nil)))
			}
			res, _ := chatCall(t, g.URL, "team-secret", smallChat)
			if want := map[string]int{"open": 200, "closed": 503}[policy]; res.StatusCode != want {
				t.Errorf("limited request with Redis down: got %d, want %d", res.StatusCode, want)
			}
			// A store known to be down is tried by one request a second;
			// the others go straight to the policy, without its timeout.
			waited := 0
			for range 6 {
				start := time.Now()
				chatCall(t, g.URL, "team-secret", smallChat)
				if time.Since(start) >= 90*time.Millisecond {
					waited++
				}
			}
			if waited > 2 {
				t.Errorf("%d of 6 limited requests waited for the store known to be down, want at most 2 (one a second)", waited)
			}
			if policy == "closed" && (res.Header.Get("Retry-After") != "1" || res.Header.Get("Retry-After-Ms") != "1000") {
				t.Errorf("limits_unavailable: Retry-After %q, retry-after-ms %q, want 1 and 1000",
					res.Header.Get("Retry-After"), res.Header.Get("Retry-After-Ms"))
			}

			rs.Restart()
			waitBody(t, g.URL, "/healthz", "ok\n")
			if status, body := waitBody(t, g.URL, "/readyz", "ready\n"); status != 200 || body != "ready\n" {
				t.Errorf("/readyz after Redis came back: got %d %q, want 200 \"ready\\n\"", status, body)
			}
			if v := scrape(t, g.URL).value("llmgate_store_up", lbl{"store": "redis"}); v != 1 {
				t.Errorf("llmgate_store_up after Redis came back: got %v, want 1", v)
			}
			g.stop()
			var down, back int
			for _, l := range log.Lines(t) { // every line is JSON: no plain text from go-redis
				switch l["msg"] {
				case "state store unreachable":
					if l["on_failure"] == policy && l["store"] == "redis" {
						down++
					}
				case "state store reachable again":
					back++
				}
			}
			if down != 1 || back != 1 {
				t.Errorf("log: got %d \"state store unreachable\" lines naming on_failure %s and %d \"reachable again\", want 1 and 1:\n%s",
					down, policy, back, log.String())
			}
		})
	}
}

// TestHealthMemoryStore: with the memory store the bodies stay the plain ones.
func TestHealthMemoryStore(t *testing.T) {
	t.Parallel()
	up := simServer(t, sim.Options{})
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret}"))
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		if status, body := get(t, g.URL+path); status != 200 || body != want {
			t.Errorf("%s: got %d %q, want 200 %q", path, status, body, want)
		}
	}
}

type usageAnswer struct {
	From    time.Time  `json:"from"`
	To      time.Time  `json:"to"`
	Usage   []usageRow `json:"usage"`
	Buckets []struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
		Size string    `json:"size"`
	} `json:"buckets"`
}

func usageQuery(t *testing.T, base, query string) (int, usageAnswer) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/admin/usage?"+query, nil)
	req.Header.Set("api-key", "admin-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out usageAnswer
	if res.StatusCode == 200 {
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatalf("/admin/usage?%s: %v", query, err)
		}
	}
	return res.StatusCode, out
}

// TestAdminUsageRange: /admin/usage counts only the buckets overlapping the
// range asked for (per minute for the last day) and says which; by default
// the last 24 hours, ending now.
func TestAdminUsageRange(t *testing.T) {
	t.Parallel()
	up := simServer(t, sim.Options{})
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret}"))
	before := time.Now()
	for range 3 {
		if res, body := chatCall(t, g.URL, "team-secret", smallChat); res.StatusCode != 200 {
			t.Fatalf("chat: %d %s", res.StatusCode, body)
		}
	}
	after := time.Now()
	requests := func(a usageAnswer) (n int64) {
		for _, r := range a.Usage {
			n += r.Requests
		}
		return n
	}
	rfc := func(t time.Time) string { return url.QueryEscape(t.UTC().Format(time.RFC3339)) }

	status, a := usageQuery(t, g.URL, "")
	if status != 200 || requests(a) != 3 {
		t.Fatalf("default range: got %d, %d requests, want 200, 3", status, requests(a))
	}
	if d := a.To.Sub(after); d < -time.Second || d > 5*time.Second {
		t.Errorf("default to: got %v, want now (%v)", a.To, after)
	}
	if d := a.To.Sub(a.From); d != 24*time.Hour {
		t.Errorf("default range: got %v, want 24h", d)
	}
	if len(a.Buckets) != 1 || a.Buckets[0].Size != "1m" || a.Buckets[0].From.After(a.From) || a.Buckets[0].To.Before(a.To) {
		t.Errorf("default range buckets: got %+v, want one run of 1m buckets covering [%v, %v)", a.Buckets, a.From, a.To)
	}

	status, a = usageQuery(t, g.URL, "from="+rfc(before.Add(-time.Minute))+"&to="+rfc(after.Add(time.Minute)))
	if status != 200 || requests(a) != 3 {
		t.Errorf("range around the requests: got %d, %d requests, want 200, 3", status, requests(a))
	}
	// From a minute after every request: nothing, though the hour is the same.
	status, a = usageQuery(t, g.URL, "from="+rfc(after.Truncate(time.Minute).Add(time.Minute))+"&to="+rfc(after.Add(3*time.Minute)))
	if status != 200 || len(a.Usage) != 0 {
		t.Errorf("range after every request: got %d, rows %+v, want 200 and none", status, a.Usage)
	}
	// Until the minute before the first request: nothing.
	status, a = usageQuery(t, g.URL, "from="+rfc(before.Add(-time.Hour))+"&to="+rfc(before.Truncate(time.Minute)))
	if status != 200 || len(a.Usage) != 0 {
		t.Errorf("range before every request: got %d, rows %+v, want 200 and none", status, a.Usage)
	}
	if status, _ := usageQuery(t, g.URL, "from="+rfc(after)+"&to="+rfc(before.Add(-time.Hour))); status != 400 {
		t.Errorf("from after to: got %d, want 400", status)
	}
}
