package app_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What a client is told when the gateway passes on an upstream's failure:
// the last attempt's 429 carries the earliest time any backend of the route
// is free, not only that backend's own delay; X-Should-Retry is false only
// when a retry of the client's cannot help soon; and an answer that is not
// a 429 or a server fault never takes its backend out of service, whatever
// reset headers it carries.

// chatOnceTo sends one chat completion to the gateway and returns the response and body.
func (g *gateway) chatOnceTo(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	return do(t, g.request(t, http.MethodPost, chatPath, []byte(chatBody)))
}

// The retries run out on a 429 while every backend is cooling down: the
// client gets the earliest recovery of the three (10 s), in both forms,
// whatever form the last backend used.
func TestRoutingFinal429TellsEarliestFreeBackend(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	// Each also says x-should-retry: true, which the gateway's own advice overrides.
	a := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"a"}}`, "Retry-After", "12", "X-Should-Retry", "true"))
	b := rec.upstream(t, "b", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"b"}}`, "Retry-After-Ms", "10000", "X-Should-Retry", "true"))
	c := rec.upstream(t, "c", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"c"}}`, "X-Ms-Retry-After-Ms", "40000", "X-Should-Retry", "true"))
	// count 2 with 3 backends: the third attempt is the last, and its 429
	// is what the client gets.
	g := startGateway(t, []backend{be("a", a.URL), be("b", b.URL), be("c", c.URL)}, "retry:\n  count: 2\n  interval: 1ms\n")
	resp, body := g.chatOnceTo(t)
	trail := resp.Header.Get("X-Llmgate-Trail")
	if resp.StatusCode != http.StatusTooManyRequests || strings.Count(trail, ",") != 2 {
		t.Fatalf("got %d, trail %q, body %s; want the third backend's 429", resp.StatusCode, trail, body)
	}
	ms, err := strconv.Atoi(resp.Header.Get("Retry-After-Ms"))
	if err != nil || ms > 10000 || ms < 9000 {
		t.Errorf("retry-after-ms: got %q, want the earliest recovery (b's 10000, less the time taken)", resp.Header.Get("Retry-After-Ms"))
	}
	if got := resp.Header.Get("Retry-After"); got != "10" {
		t.Errorf("retry-after: got %q, want 10", got)
	}
	if got := resp.Header.Get("X-Ms-Retry-After-Ms"); got != "" {
		t.Errorf("x-ms-retry-after-ms: got %q, want it replaced by the gateway's own delay", got)
	}
	if got := resp.Header.Values("X-Should-Retry"); len(got) != 1 || got[0] != "false" {
		t.Errorf("x-should-retry: got %q, want false (every backend was tried and none is free for 10 s), alone", got)
	}
}

// With no retries left but other backends free, the client is not told
// to give up, and a 429's delay says a backend is free now.
func TestRoutingFinalFailureWithBackendsLeftKeepsClientRetrying(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer behaviour
		status int
	}{
		{"429", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"busy"}}`, "Retry-After", "30"), http.StatusTooManyRequests},
		{"500", serverError(`{"error":{"code":"500","message":"boom"}}`), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			a := rec.upstream(t, "a", tc.answer)
			b := rec.upstream(t, "b", ok())
			c := rec.upstream(t, "c", ok())
			g := startGateway(t, []backend{be("a", a.URL), be("b", b.URL), be("c", c.URL)}, "retry:\n  count: 0\n")
			for i := 0; i < 200 && rec.Count("a") == 0; i++ {
				resp, body := g.chatOnceTo(t)
				if resp.Header.Get("X-Llmgate-Backend") != "a" {
					continue
				}
				if resp.StatusCode != tc.status {
					t.Fatalf("a's answer: got %d %s, want %d", resp.StatusCode, body, tc.status)
				}
				if got := resp.Header.Get("X-Should-Retry"); got == "false" {
					t.Errorf("x-should-retry: got false with two backends untried and free")
				}
				if tc.status == http.StatusTooManyRequests {
					if got := resp.Header.Get("Retry-After-Ms"); got != "0" {
						t.Errorf("retry-after-ms: got %q, want 0 (b and c are free now)", got)
					}
				}
			}
			if rec.Count("a") == 0 {
				t.Fatal("no request reached a in 200")
			}
		})
	}
}

// A caller's fault (a content-filter 400) and a server fault carry
// OpenAI's routine x-ratelimit-reset-* headers, limits far from used up:
// neither takes the backend out of service, and the trail shows no delay.
func TestRoutingResetHeadersAloneDoNotCoolDown(t *testing.T) {
	t.Parallel()
	reset := []string{
		"X-Ratelimit-Reset-Requests", "6m0s", "X-Ratelimit-Remaining-Requests", "99",
		"X-Ratelimit-Reset-Tokens", "250ms", "X-Ratelimit-Remaining-Tokens", "9000",
	}
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"content filter 400", http.StatusBadRequest, `{"error":{"code":"content_filter","message":"filtered"}}`},
		{"500", http.StatusInternalServerError, `{"error":{"code":"500","message":"boom"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			a := rec.upstream(t, "a", respond(tc.status, tc.body, reset...))
			g := startGateway(t, []backend{be("a", a.URL)}, "retry:\n  count: 0\n")
			for i := range 2 {
				resp, body := g.chatOnceTo(t)
				if resp.StatusCode != tc.status {
					t.Fatalf("request %d: got %d %s, want a's %d passed on", i, resp.StatusCode, body, tc.status)
				}
				if trail := resp.Header.Get("X-Llmgate-Trail"); strings.Contains(trail, "ra=") {
					t.Errorf("request %d: trail %q shows a delay read from reset headers", i, trail)
				}
			}
			if n := rec.Count("a"); n != 2 {
				t.Errorf("a was called %d times, want 2 (never cooled down)", n)
			}
		})
	}
}

// A 429 still cools its backend down by its reset header when the limit is
// used up, and the client's next request waits for nothing but goes elsewhere.
func TestRouting429WithExhaustedResetCoolsDown(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"busy"}}`,
		"X-Ratelimit-Reset-Requests", "30s", "X-Ratelimit-Remaining-Requests", "0"))
	b := rec.upstream(t, "b", ok())
	g := startGateway(t, []backend{be("a", a.URL), be("b", b.URL)}, "retry:\n  count: 1\n  interval: 1ms\n")
	start := time.Now()
	for range 6 {
		if resp, body := g.chatOnceTo(t); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d %s, want 200 from b", resp.StatusCode, body)
		}
	}
	if n := rec.Count("a"); n > 1 {
		t.Errorf("a was called %d times in %v, want at most once (cooling down for 30 s)", n, time.Since(start))
	}
}

// Every backend answers 503 with a delay longer than the gateway may wait
// (retry.max_wait): the retries stop early, and the client still gets the
// last upstream answer as it came (status, body, its headers), with the
// true time until a backend can be called, never a 429 of the gateway's.
// A 500 with retry-after-ms likewise.
func TestRoutingBlockedAfterServerFaultsRelaysLastAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer behaviour
		status int
	}{
		{"503 with retry-after", respond(http.StatusServiceUnavailable, `{"error":{"code":"ServiceUnavailable","message":"busy"}}`,
			"Retry-After", "30", "Apim-Request-Id", "u-1"), http.StatusServiceUnavailable},
		{"500 with retry-after-ms", respond(http.StatusInternalServerError, `{"error":{"code":"InternalServerError","message":"boom"}}`,
			"Retry-After-Ms", "15000", "Apim-Request-Id", "u-1"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			a := rec.upstream(t, "a", tc.answer)
			b := rec.upstream(t, "b", tc.answer)
			g := startGateway(t, []backend{be("a", a.URL), be("b", b.URL)}, "retry:\n  count: 5\n  interval: 1ms\n")
			resp, body := g.chatOnceTo(t)
			var e struct{ Error struct{ Code string } }
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != tc.status || e.Error.Code == "429" || e.Error.Code == "no_backend" || resp.Header.Get("Apim-Request-Id") != "u-1" {
				t.Fatalf("got %d %s (apim-request-id %q, trail %q), want the last upstream answer %d as it came",
					resp.StatusCode, body, resp.Header.Get("Apim-Request-Id"), resp.Header.Get("X-Llmgate-Trail"), tc.status)
			}
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-Should-Retry") != "false" {
				t.Errorf("trail %q: retry-after %q, x-should-retry %q: want the time until a backend can be called, and false", resp.Header.Get("X-Llmgate-Trail"),
					resp.Header.Get("Retry-After"), resp.Header.Get("X-Should-Retry"))
			}
		})
	}
}
