package drills

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/sim"
)

// Each fault drill runs scenarioRequests() requests (half plain, half
// streaming) from concurrency clients through a gateway in front of one
// faulty backend and, unless the scenario is a total outage, one healthy
// one, then asserts on the measured figures.

// run drives a scenario's load and sums it up.
func run(t *testing.T, g *gateway, n int, kindOf func(int) kind, ups ...*upstream) (*figures, []result) {
	t.Helper()
	c := newClient(t, g.url)
	start := time.Now()
	rs := drive(c, n, concurrency, kindOf)
	f := summarize(t.Name(), rs, time.Since(start), ups...)
	f.report(t)
	return f, rs
}

// expectFullSuccess asserts 100 % success and no 429 reaching a client.
func expectFullSuccess(t *testing.T, f *figures, rs []result) {
	t.Helper()
	if f.ok() != f.n {
		shown := 0
		for _, r := range rs {
			if r.out != okAnswer && shown < 5 {
				shown++
				t.Errorf("request %d (%s): %s, status %d, code %q, trail %q, err %v", r.i, r.kind, r.out, r.status, r.errCode, r.trail, r.err)
			}
		}
		t.Errorf("success rate %.1f %% (%d of %d), want 100 %% while a healthy backend remains", 100*f.okRate(), f.ok(), f.n)
	}
	if n := f.status[http.StatusTooManyRequests]; n > 0 {
		t.Errorf("%d 429s reached clients, want 0 while a healthy backend remains", n)
	}
}

// expectAttempts asserts the most attempts any request made and that the
// gateway's attempt counts agree with what the upstreams received (plus
// attempts at backends that never answered, named in extra).
func expectAttempts(t *testing.T, f *figures, rs []result, maxAttempts int, dead ...string) {
	t.Helper()
	if f.attemptsMax > maxAttempts {
		t.Errorf("max attempts per request = %d, want <= %d", f.attemptsMax, maxAttempts)
	}
	want := f.upstreamCalls
	for _, d := range dead {
		want += int64(trailCount(rs, d))
	}
	if int64(f.attemptsSum) != want {
		t.Errorf("the gateway reported %d upstream attempts, the upstreams saw %d: every attempt must be one upstream call", f.attemptsSum, want)
	}
}

// raForm is one way a backend says how long to wait.
type raForm struct {
	name string
	// set writes the header on a 429 sent at now and returns when the wait ends.
	set func(h http.Header, now time.Time) time.Time
}

var raForms = []raForm{
	{"retry-after-ms", func(h http.Header, now time.Time) time.Time {
		h.Set("Retry-After-Ms", "400")
		return now.Add(400 * time.Millisecond)
	}},
	{"x-ms-retry-after-ms", func(h http.Header, now time.Time) time.Time {
		h.Set("X-Ms-Retry-After-Ms", "400")
		return now.Add(400 * time.Millisecond)
	}},
	{"retry-after-seconds", func(h http.Header, now time.Time) time.Time {
		h.Set("Retry-After", "1")
		return now.Add(time.Second)
	}},
	{"retry-after-http-date", func(h http.Header, now time.Time) time.Time {
		at := now.Add(2 * time.Second).UTC().Truncate(time.Second)
		h.Set("Retry-After", at.Format(http.TimeFormat))
		return at
	}},
	{"x-ratelimit-reset-tokens", func(h http.Header, now time.Time) time.Time {
		h.Set("X-Ratelimit-Remaining-Tokens", "0")
		h.Set("X-Ratelimit-Reset-Tokens", "400ms")
		return now.Add(400 * time.Millisecond)
	}},
}

const azure429Body = `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second."}}`

// throttler answers every other request with 429 and one Retry-After form,
// and hands the others to next.
type throttler struct {
	next http.Handler
	form raForm
	n    atomic.Int64
	mu   sync.Mutex // guards waits
	// waits are the [sent, until) windows of the 429s sent.
	waits [][2]time.Time
}

func (th *throttler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if th.n.Add(1)%2 == 1 {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		until := th.form.set(w.Header(), now)
		th.mu.Lock()
		th.waits = append(th.waits, [2]time.Time{now, until})
		th.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, azure429Body)
		return
	}
	th.next.ServeHTTP(w, r)
}

// violations counts the requests that reached the backend while it had
// asked to be left alone (with 100 ms of slack either side for requests
// already on their way when the gateway read the 429).
func (th *throttler) violations(arrivals []time.Time) int {
	th.mu.Lock()
	defer th.mu.Unlock()
	const slack = 100 * time.Millisecond
	n := 0
	for _, a := range arrivals {
		for _, w := range th.waits {
			if a.After(w[0].Add(slack)) && a.Before(w[1].Add(-slack)) {
				n++
				break
			}
		}
	}
	return n
}

func (th *throttler) sent() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return len(th.waits)
}

// TestDrillRetryAfterForms: one backend answers 429 half of the time with
// one Retry-After form; the other is healthy. Every request succeeds, no 429
// reaches a client, each 429 costs exactly one retry, and the throttled
// backend is left alone for as long as it asked.
func TestDrillRetryAfterForms(t *testing.T) {
	for _, form := range raForms {
		t.Run(form.name, func(t *testing.T) {
			s := sim.New(withKey("a", simOptions("a")))
			th := &throttler{next: s, form: form}
			a := newUpstream(t, "a", th)
			a.sim = s
			b := newSim(t, "b", simOptions("b"))
			g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
			f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

			expectAllAnswered(t, f, rs)
			expectFullSuccess(t, f, rs)
			expectAttempts(t, f, rs, 2)
			if th.sent() == 0 {
				t.Errorf("backend a sent no 429: the drill did not exercise %s", form.name)
			}
			if f.retries != th.sent() {
				t.Errorf("retries = %d, 429s sent = %d: want exactly one retry per 429", f.retries, th.sent())
			}
			if v := th.violations(a.arrivalTimes()); v > 0 {
				t.Errorf("%d requests reached backend a while its %s wait ran; want 0", v, form.name)
			}
			expectLatency(t, f, 30*time.Millisecond, 150*time.Millisecond)
			expectOneLogLinePerAnswer(t, g, f)
			expectNoLeak(t, a, b)
		})
	}
}

func withKey(name string, o sim.Options) sim.Options {
	o.Key = backendKey(name)
	return o
}

// TestDrillHardDown: one backend refuses connections. Every request
// succeeds; the dead backend costs at most one extra attempt per request,
// and its circuit keeps most requests away from it.
func TestDrillHardDown(t *testing.T) {
	down := closedURL(t)
	b := newSim(t, "b", simOptions("b"))
	g := startGateway(t, drillConfig(t, []backendSpec{beURL("down", down), be(b)}, nil))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, b)

	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	expectAttempts(t, f, rs, 2, "down")
	if got := f.meanAttempts(); got > 1.25 {
		t.Errorf("mean attempts = %.2f, want <= 1.25 (the circuit keeps requests off a dead backend)", got)
	}
	expectLatency(t, f, 30*time.Millisecond, 150*time.Millisecond)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, b)
}

// TestDrillHang: one backend accepts requests and never answers. The
// upstream header timeout (250 ms here) ends each wait and the request fails
// over; every request succeeds within that timeout plus the healthy answer.
func TestDrillHang(t *testing.T) {
	o := simOptions("a")
	o.Faults = sim.Faults{Hang: 1}
	a := newSim(t, "a", o)
	b := newSim(t, "b", simOptions("b"))
	const headerTimeout = 250 * time.Millisecond
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, map[string]any{"timeouts.response_header": "250ms"}))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	expectAttempts(t, f, rs, 2)
	expectLatencyPlus(t, f, 30*time.Millisecond, 150*time.Millisecond, headerTimeout)
	if got, lim := f.clientP(1), headerTimeout+margin(500*time.Millisecond); got > lim {
		t.Errorf("slowest request took %v, want <= %v (one header timeout, then a healthy answer)", got, lim)
	}
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillSlowFirstToken: one backend takes 150 ms to its first token
// (the other 10 ms), within every timeout. Slowness is not failure: every
// request succeeds on its first attempt, and the gateway adds little to the
// upstream's own latency.
func TestDrillSlowFirstToken(t *testing.T) {
	o := simOptions("a")
	o.TTFT = 150 * time.Millisecond
	a := newSim(t, "a", o)
	b := newSim(t, "b", simOptions("b"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	expectAttempts(t, f, rs, 1)
	expectLatency(t, f, 30*time.Millisecond, 100*time.Millisecond)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillSlowFirstTokenPastTimeouts: one backend's first token comes
// after 1 s, beyond timeouts.response_header and timeouts.stream_idle
// (200 ms). Plain requests fail over before anything reached the client and
// all succeed. A stream from Azure starts with an empty prompt-filter chunk,
// which the gateway reads past (F4) while a failover is still possible, so
// streams fail over too; one that stalled on its last attempt could only
// end with a clear error event, never a silent end.
func TestDrillSlowFirstTokenPastTimeouts(t *testing.T) {
	o := simOptions("a")
	o.TTFT = time.Second
	a := newSim(t, "a", o)
	b := newSim(t, "b", simOptions("b"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)},
		map[string]any{"timeouts.response_header": "200ms", "timeouts.stream_idle": "200ms"}))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectAttempts(t, f, rs, 2)
	streamErrors := 0
	for _, r := range rs {
		switch {
		case r.kind == chatPlain && r.out != okAnswer:
			t.Errorf("plain request %d: %s (status %d, trail %q), want success by failover", r.i, r.out, r.status, r.trail)
		case r.kind == chatStream && r.out == errorAnswer:
			streamErrors++
			if r.errCode != "upstream_stream_timeout" || r.status != http.StatusOK {
				t.Errorf("stream %d: status %d, error code %q, want 200 and an upstream_stream_timeout error event", r.i, r.status, r.errCode)
			}
		case r.kind == chatStream && r.out != okAnswer:
			t.Errorf("stream %d: %s, want success or a clear error event", r.i, r.out)
		}
	}
	t.Logf("streams that stalled past stream_idle after the prompt-filter chunk: %d of %d (ended with an error event)", streamErrors, f.n/2)
	if got := f.clientP(1); got > 2*time.Second {
		t.Errorf("slowest successful request took %v, want <= 2s", got)
	}
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillStreamCut: one backend cuts half of its answers in the middle.
// A plain answer is read ahead before anything reaches the client, so a cut
// one fails over (one retry, the client never knows); a stream's bytes
// already reached the client, so no failover: each cut stream reaches the
// client as exactly one clear SSE error event, and every other request
// succeeds.
func TestDrillStreamCut(t *testing.T) {
	o := simOptions("a")
	o.Faults = sim.Faults{StreamCut: 0.5}
	a := newSim(t, "a", o)
	b := newSim(t, "b", simOptions("b"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectAttempts(t, f, rs, 2)
	cuts := int(a.sim.Stats().Faults["stream_cut"])
	retried := 0
	for _, r := range rs {
		if r.attempts > 1 {
			retried++
		}
	}
	if got := f.outcomes[errorAnswer] + f.outcomes[aborted] + retried; got != cuts {
		t.Errorf("clients saw %d errors and %d requests were retried, backend a cut %d answers: want each cut either failed over (plain) or one clear error (stream)",
			f.outcomes[errorAnswer]+f.outcomes[aborted], retried, cuts)
	}
	for _, r := range rs {
		if r.out == errorAnswer && (r.kind != chatStream || r.errCode != "upstream_stream_broken") {
			t.Errorf("request %d (%s): error %q, want streams cut to end with upstream_stream_broken", r.i, r.kind, r.errCode)
		}
		if r.out == aborted {
			t.Errorf("request %d (%s): aborted, want a plain cut to fail over and a stream cut to end with an error event", r.i, r.kind)
		}
		if r.kind == chatPlain && r.out != okAnswer {
			t.Errorf("request %d (plain): %v, want a plain answer cut by one backend to fail over to the other", r.i, r.out)
		}
	}
	if cuts == 0 {
		t.Error("backend a cut nothing: the drill did not exercise stream cuts")
	}
	if f.okRate() < 0.5 {
		t.Errorf("success rate %.1f %%, want >= 50 %% (only backend a cuts, half the time)", 100*f.okRate())
	}
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillPlainCutWithoutLength: a backend sends a non-streamed 200
// without Content-Length (chunked) and breaks it halfway. The client must
// see the break (an aborted connection), never a clean but truncated 200.
func TestDrillPlainCutWithoutLength(t *testing.T) {
	a := newUpstream(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"id":"chatcmpl-cut","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"half an ans`)
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, nil))
	f, rs := run(t, g, 20, func(int) kind { return chatPlain }, a)

	if f.outcomes[truncated] > 0 {
		t.Fatalf("BUG: %d of %d plain answers cut mid-body reached the client as a clean 200 with a truncated body "+
			"(internal/proxy/forward.go attempt: on a copy error it records q.err and returns normally, so net/http ends "+
			"the chunked body cleanly; it should panic(http.ErrAbortHandler) as httputil.ReverseProxy does)", f.outcomes[truncated], f.n)
	}
	expectAllAnswered(t, f, rs)
	// The only backend cut every answer, on every attempt: the client gets
	// one clear 502 in the JSON error shape (nothing was committed: the
	// gateway reads a plain answer ahead before sending it).
	for _, r := range rs {
		if r.status != http.StatusBadGateway || r.errCode != "upstream_body_broken" {
			t.Errorf("request %d: status %d code %q, want 502 upstream_body_broken", r.i, r.status, r.errCode)
		}
	}
}

// TestDrillErrorEvent: one backend answers half of its streams 200 and
// then only an error event. The gateway reads the first event before
// committing, so those streams fail over: every request succeeds, each
// error event costs exactly one retry.
func TestDrillErrorEvent(t *testing.T) {
	o := simOptions("a")
	o.Faults = sim.Faults{ErrorEvent: 0.5}
	a := newSim(t, "a", o)
	b := newSim(t, "b", simOptions("b"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	expectAttempts(t, f, rs, 2)
	events := int(a.sim.Stats().Faults["error_event"])
	if events == 0 {
		t.Error("backend a sent no error event: the drill did not exercise them")
	}
	if f.retries != events {
		t.Errorf("retries = %d, error events = %d: want one retry per error event", f.retries, events)
	}
	expectLatency(t, f, 30*time.Millisecond, 150*time.Millisecond)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillTotalOutage: every backend is down (one answers 503, one resets
// connections). Every request gets one clear JSON error quickly; attempts
// per request stay within retry.count+1 and retries within the retry
// budget (ratio 0.5 of requests + 1/s over 10 s here). When the outage
// ends, service comes back within the circuit cool-down.
func TestDrillTotalOutage(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	ob := simOptions("b")
	ob.Faults = sim.Faults{OutageReset: true}
	b := newSim(t, "b", ob)
	a.sim.StartOutage(time.Hour)
	b.sim.StartOutage(time.Hour)
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)},
		map[string]any{"routing.retry_budget.min_per_second": 1, "routing.retry_budget.ratio": 0.5}))
	n := scenarioRequests()
	f, rs := run(t, g, n, halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectAttempts(t, f, rs, 4)
	if f.ok() != 0 {
		t.Errorf("%d requests succeeded during a total outage", f.ok())
	}
	for _, r := range rs {
		if r.out != errorAnswer || (r.status != http.StatusBadGateway && r.status != http.StatusServiceUnavailable) {
			t.Errorf("request %d: %s, status %d, want one clear 502 or 503", r.i, r.out, r.status)
			break
		}
		if !r.jsonErr {
			t.Errorf("request %d: status %d without the JSON error shape", r.i, r.status)
			break
		}
	}
	// The budget allows ratio × requests + min_per_second × 10 s retries;
	// concurrency more may be granted at once at the boundary.
	if budget := n/2 + 10 + concurrency; f.retries > budget {
		t.Errorf("retries = %d, want <= %d (the retry budget)", f.retries, budget)
	}
	var slowest time.Duration
	for _, r := range rs {
		slowest = max(slowest, r.latency)
	}
	if slowest > 2*time.Second {
		t.Errorf("slowest error took %v, want <= 2s (an outage must fail fast)", slowest)
	}
	t.Logf("outage: %d requests, %d upstream calls (%.2f per request), %d retries (budget %d)",
		n, f.upstreamCalls, float64(f.upstreamCalls)/float64(n), f.retries, n/2+10)
	expectOneLogLinePerAnswer(t, g, f)

	// Recovery.
	a.sim.StartOutage(0)
	b.sim.StartOutage(0)
	end := time.Now()
	c := newClient(t, g.url)
	var lastFail time.Time
	deadline := end.Add(5 * time.Second)
	okInARow := 0
	for okInARow < 40 && time.Now().Before(deadline) {
		rs := drive(c, 4, 4, halfStreaming)
		for _, r := range rs {
			if r.out != okAnswer {
				lastFail = time.Now()
				okInARow = 0
			} else {
				okInARow++
			}
		}
		if okInARow == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if okInARow < 40 {
		t.Fatalf("service did not come back within 5s of the outage's end")
	}
	recovery := time.Duration(0)
	if !lastFail.IsZero() {
		recovery = lastFail.Sub(end)
	}
	t.Logf("recovery: last failure %v after the outage ended (circuit cool-down 300ms)", recovery.Round(time.Millisecond))
	if recovery > 1500*time.Millisecond {
		t.Errorf("recovery took %v, want <= 1.5s (cool-down 300ms + slow start 200ms + slack)", recovery)
	}
	expectNoLeak(t, a, b)
}

// TestDrillFlapping: one backend goes down for 50 ms of every 100 ms
// (alternately 503 and connection resets). Every request succeeds with at
// most one failover.
func TestDrillFlapping(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	b := newSim(t, "b", simOptions("b"))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			a.sim.SetFaults(sim.Faults{OutageReset: i%2 == 1})
			a.sim.StartOutage(50 * time.Millisecond)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)
	close(stop)
	wg.Wait()

	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	expectAttempts(t, f, rs, 2)
	if a.sim.Stats().Faults["outage"] == 0 {
		t.Error("backend a never failed a request: the drill did not exercise flapping")
	}
	expectLatency(t, f, 30*time.Millisecond, 150*time.Millisecond)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillAuthBreak: one backend's credential breaks (401 to everything).
// Its 401 never reaches a client as if the client's key were wrong: every
// request succeeds on the other backend, and the broken one is left alone
// (routing.auth_cooldown, 60 s) after the first refusals.
func TestDrillAuthBreak(t *testing.T) {
	o := simOptions("a")
	o.Faults = sim.Faults{AuthBreak: true}
	a := newSim(t, "a", o)
	b := newSim(t, "b", simOptions("b"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	f, rs := run(t, g, scenarioRequests(), halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	expectAttempts(t, f, rs, 2)
	if n := f.status[http.StatusUnauthorized]; n > 0 {
		t.Errorf("%d backend 401s reached clients, want 0", n)
	}
	if got := a.received.Load(); got > concurrency {
		t.Errorf("the backend with the broken credential received %d requests, want <= %d (left alone after its first 401)", got, concurrency)
	}
	found := false
	for _, m := range g.log.lines(t) {
		if m["msg"] == "backend refused its credential: check its api_key" && m["backend"] == "a" {
			found = true
			break
		}
	}
	if !found {
		t.Error("no log line names backend a's refused credential")
	}
	expectLatency(t, f, 30*time.Millisecond, 150*time.Millisecond)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}

// TestDrillQuotaExhausted: two backends with 15 requests per minute each
// (30 in all) get more requests than that. Every unit of capacity is used
// (exactly 30 successes: no request fails while capacity remains), and the
// rest get 429 with a truthful Retry-After at once.
func TestDrillQuotaExhausted(t *testing.T) {
	const rpm = 15
	oa, ob := simOptions("a"), simOptions("b")
	oa.RPM, ob.RPM = rpm, rpm
	a, b := newSim(t, "a", oa), newSim(t, "b", ob)
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	n := 4 * rpm
	f, rs := run(t, g, n, halfStreaming, a, b)

	expectAllAnswered(t, f, rs)
	if f.ok() != 2*rpm {
		t.Errorf("successes = %d, want exactly the capacity %d", f.ok(), 2*rpm)
	}
	for _, r := range rs {
		if r.out == okAnswer {
			continue
		}
		if r.status != http.StatusTooManyRequests {
			t.Errorf("request %d: status %d (%s, code %q, trail %q), want 429 once capacity is gone", r.i, r.status, r.out, r.errCode, r.trail)
			continue
		}
		if secs, err := time.ParseDuration(r.retryAfter + "s"); err != nil || secs < time.Second || secs > time.Minute {
			t.Errorf("request %d: 429 with Retry-After %q, want 1..60 s (the window's truth)", r.i, r.retryAfter)
		}
		if r.latency > time.Second {
			t.Errorf("request %d: 429 after %v, want at once", r.i, r.latency)
		}
	}
	expectAttempts(t, f, rs, 4)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}
