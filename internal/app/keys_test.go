package app_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/sim"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

// served is a gateway started with app.Serve (so its shared-state loop runs).
type served struct {
	URL  string
	App  *app.App
	stop func()
}

func serveGateway(t testing.TB, yaml string) *served {
	t.Helper()
	s, _ := serveLogged(t, yaml)
	return s
}

func simServer(t testing.TB, o sim.Options) *httptest.Server {
	t.Helper()
	s := sim.New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv
}

func keysYAML(store, upstream, keys string) string {
	return fmt.Sprintf(`
keys:
%s
admin: {key: admin-secret}
store: %s
backends:
  - name: sim
    url: %s
`, keys, store, upstream)
}

func chatCall(t testing.TB, base, key, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", strings.NewReader(body))
	req.Header.Set("api-key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

const smallChat = `{"messages":[{"role":"user","content":"hi [[tokens:5]]"}],"max_tokens":50}`

// TestTwoInstancesShareOneKeyRPM: two gateways on one Redis admit, together,
// no more than the key's rpm.
func TestTwoInstancesShareOneKeyRPM(t *testing.T) {
	rs := redistest.Start(t)
	up := simServer(t, sim.Options{})
	store := fmt.Sprintf("{type: redis, url: %q}", rs.URL())
	keys := "  - {name: team, key: team-secret, rpm: 10}"
	g1 := serveGateway(t, keysYAML(store, up.URL, keys))
	g2 := serveGateway(t, keysYAML(store, up.URL, keys))
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		base := g1.URL
		if i%2 == 1 {
			base = g2.URL
		}
		wg.Go(func() {
			res, body := chatCall(t, base, "team-secret", smallChat)
			switch res.StatusCode {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
				ms, _ := strconv.Atoi(res.Header.Get("Retry-After-Ms"))
				secs, _ := strconv.Atoi(res.Header.Get("Retry-After"))
				if ms <= 0 || ms > 60000 || secs < 1 || res.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
					t.Errorf("429 headers: retry-after %q, retry-after-ms %q, remaining %q",
						res.Header.Get("Retry-After"), res.Header.Get("Retry-After-Ms"), res.Header.Get("X-Ratelimit-Remaining-Requests"))
				}
				if !strings.Contains(body, "requests-per-minute") {
					t.Errorf("429 body: %s", body)
				}
			default:
				t.Errorf("status %d: %s", res.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || limited.Load() != 30 {
		t.Errorf("admitted %d, limited %d across two instances; want exactly 10 admitted", ok.Load(), limited.Load())
	}
}

// TestTPMReconcilesWithTrueUsage: a key's tokens-per-minute counts the
// tokens really used (plain and streamed), not the admission estimate; a
// streaming client that did not ask for usage sees no usage chunk.
func TestTPMReconcilesWithTrueUsage(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			store := "{type: memory}"
			if kind == "redis" {
				store = fmt.Sprintf("{type: redis, url: %q}", redistest.Start(t).URL())
			}
			s := sim.New(sim.Options{})
			up := httptest.NewServer(s)
			t.Cleanup(func() { up.Close(); s.Close() })
			// Each request is estimated at ~(body/4 + 500) tokens, but uses ~20.
			g := serveGateway(t, keysYAML(store, up.URL, "  - {name: team, key: team-secret, tpm: 3000}"))
			client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey("team-secret"), option.WithMaxRetries(0))
			ctx := context.Background()
			params := openai.ChatCompletionNewParams{Model: "gpt-4o", MaxTokens: openai.Int(500),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi [[tokens:5]]")}}
			var reported int64
			for i := range 30 {
				if i%2 == 0 {
					resp, err := client.Chat.Completions.New(ctx, params)
					if err != nil {
						t.Fatalf("request %d: %v (without reconciliation the estimate would exhaust tpm after 5)", i, err)
					}
					reported += resp.Usage.TotalTokens
					continue
				}
				st := client.Chat.Completions.NewStreaming(ctx, params)
				chunks := 0
				for st.Next() {
					c := st.Current()
					chunks++
					if c.Usage.TotalTokens != 0 || (len(c.Choices) == 0 && c.JSON.Usage.Valid()) {
						t.Errorf("stream %d: client got a usage chunk it did not ask for: %s", i, c.RawJSON())
					}
					if strings.Contains(c.RawJSON(), `"usage"`) {
						t.Errorf("stream %d: chunk carries a usage field the client did not ask for: %s", i, c.RawJSON())
					}
				}
				if err := st.Err(); err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				if chunks == 0 {
					t.Fatalf("stream %d: no chunks", i)
				}
			}
			// Reconciliation with a remote store runs after each answer, in the
			// background: give the last ones their moment.
			time.Sleep(300 * time.Millisecond)
			stats := s.Stats()
			true_ := int64(stats.PromptTokens + stats.CompletionTokens)
			// The key's remaining tokens reflect the true usage.
			res, _ := chatCall(t, g.URL, "team-secret", smallChat)
			rem, err := strconv.ParseInt(res.Header.Get("X-Ratelimit-Remaining-Tokens"), 10, 64)
			if err != nil {
				t.Fatalf("remaining tokens header: %q", res.Header.Get("X-Ratelimit-Remaining-Tokens"))
			}
			estimateOfLast := int64(len(smallChat)+3)/4 + 50
			if used := 3000 - rem - estimateOfLast; used < true_-true_/10 || used > true_+true_/10 {
				t.Errorf("tokens counted against the key = %d, true usage of 30 requests = %d", used, true_)
			}
			// /admin/usage shows the same tokens.
			rows := adminUsage(t, g.URL)
			var total int64
			for _, r := range rows {
				if r.Key == "team" && r.Model == "gpt-4o" && r.Backend == "sim" {
					total += r.TotalTokens
				}
			}
			if total < true_ {
				t.Errorf("/admin/usage total = %d, want at least the true usage %d (rows %+v)", total, true_, rows)
			}
			_ = reported
		})
	}
}

type usageRow struct {
	Key              string `json:"key"`
	Model            string `json:"model"`
	Backend          string `json:"backend"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
}

func adminUsage(t testing.TB, base string) []usageRow {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/admin/usage", nil)
	req.Header.Set("api-key", "team-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("/admin/usage with a client key: %d, want 401", res.StatusCode)
	}
	req.Header.Set("api-key", "admin-secret")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Usage []usageRow `json:"usage"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("/admin/usage: %d %v", res.StatusCode, err)
	}
	return out.Usage
}

func TestKeySHA256(t *testing.T) {
	up := simServer(t, sim.Options{})
	sum := sha256.Sum256([]byte("hashed-team-secret"))
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: hashed, key_sha256: "+hex.EncodeToString(sum[:])+"}"))
	if res, body := chatCall(t, g.URL, "hashed-team-secret", smallChat); res.StatusCode != 200 {
		t.Errorf("key_sha256 key: %d %s", res.StatusCode, body)
	}
	if res, _ := chatCall(t, g.URL, hex.EncodeToString(sum[:]), smallChat); res.StatusCode != 401 {
		t.Errorf("the digest itself as a key: %d, want 401", res.StatusCode)
	}
}

// TestRedisRestartMidLoad: a Redis restart in the middle of a load run loses
// no request, and the gateway uses Redis again afterwards without a restart
// of its own.
func TestRedisRestartMidLoad(t *testing.T) {
	rs := redistest.Start(t)
	up := simServer(t, sim.Options{})
	g := serveGateway(t, keysYAML(fmt.Sprintf("{type: redis, url: %q, timeout: 100ms}", rs.URL()), up.URL,
		"  - {name: team, key: team-secret, rpm: 100000}"))
	var answered, failed atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				res, _ := chatCall(t, g.URL, "team-secret", smallChat)
				answered.Add(1)
				if res.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	rs.Restart()
	time.Sleep(500 * time.Millisecond)
	close(stopLoad)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across a Redis restart (store.on_failure: open)", failed.Load(), answered.Load())
	}
	// Back on Redis: a fresh window there (the restart emptied it).
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, _ := chatCall(t, g.URL, "team-secret", smallChat)
		rem, _ := strconv.Atoi(res.Header.Get("X-Ratelimit-Remaining-Requests"))
		if res.StatusCode == 200 && rem > 100000-int(answered.Load())-5 && healthy(t, g.URL) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not return to Redis: remaining %d, answered %d", rem, answered.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d requests answered across the restart", answered.Load())
}

func healthy(t testing.TB, base string) bool {
	res, err := http.Get(base + "/healthz")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	line, _ := bufio.NewReader(res.Body).ReadString('\n')
	return res.StatusCode == 200 && !strings.Contains(line, "unreachable")
}

func BenchmarkKeyLimits(b *testing.B) {
	up := simServer(b, sim.Options{})
	for _, kind := range []string{"memory", "redis"} {
		b.Run(kind, func(b *testing.B) {
			store := "{type: memory}"
			if kind == "redis" {
				store = fmt.Sprintf("{type: redis, url: %q}", redistest.Start(b).URL())
			}
			g := serveGateway(b, keysYAML(store, up.URL, "  - {name: team, key: team-secret, rpm: 1000000000, tpm: 1000000000000}"))
			b.ReportAllocs()
			for b.Loop() {
				if res, body := chatCall(b, g.URL, "team-secret", smallChat); res.StatusCode != 200 {
					b.Fatalf("%d %s", res.StatusCode, body)
				}
			}
		})
	}
}

// A key's tokens-per-minute 429, while its own requests in flight hold
// their estimates in the window, does not send the client away for the
// whole window: their true usage may free room the moment they end. Once
// they have ended, the same request is admitted.
func TestTPM429WithRequestsInFlightSaysLookAgainSoon(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var arrived atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completionJSON) // 8 tokens used
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { closeOnce(release) })
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret, tpm: 1000}"))
	const body = `{"messages":[{"role":"user","content":"hi"}],"max_tokens":400}` // estimated at about 400
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if res, b := chatCall(t, g.URL, "team-secret", body); res.StatusCode != 200 {
				t.Errorf("request in flight: %d %s", res.StatusCode, b)
			}
		})
	}
	for arrived.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	res, b := chatCall(t, g.URL, "team-secret", body)
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request: got %d %s, want 429", res.StatusCode, b)
	}
	if ra := res.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After: got %q, want 1 (the two in flight will settle at 8 tokens each), not the window", ra)
	}
	closeOnce(release)
	wg.Wait()
	if res, b := chatCall(t, g.URL, "team-secret", body); res.StatusCode != 200 {
		t.Errorf("after the two ended: got %d %s, want 200", res.StatusCode, b)
	}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// TestTwoInstancesShareOneKeyMaxStreams: with the Redis store a key's
// max_streams bounds its streams on all replicas together; a stream that
// ends gives its slot back to any replica.
func TestTwoInstancesShareOneKeyMaxStreams(t *testing.T) {
	rs := redistest.Start(t)
	up := simServer(t, sim.Options{TokenInterval: 10 * time.Millisecond})
	store := fmt.Sprintf("{type: redis, url: %q}", rs.URL())
	keys := "  - {name: team, key: team-secret, max_streams: 1}"
	g1 := serveGateway(t, keysYAML(store, up.URL, keys))
	g2 := serveGateway(t, keysYAML(store, up.URL, keys))
	const stream = `{"messages":[{"role":"user","content":"hi [[tokens:60]]"}],"max_tokens":60,"stream":true}`
	open := func(base string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", strings.NewReader(stream))
		req.Header.Set("api-key", "team-secret")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := open(g1.URL)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first stream: %d", first.StatusCode)
	}
	second := open(g2.URL)
	b, _ := io.ReadAll(second.Body)
	second.Body.Close()
	if second.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "too_many_streams") {
		t.Errorf("a second stream on the other replica: %d %s, want 429 too_many_streams", second.StatusCode, b)
	}
	_, _ = io.Copy(io.Discard, first.Body) // the first stream runs to its end
	first.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := open(g2.URL)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first stream ended, the other replica still refuses: %d", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
