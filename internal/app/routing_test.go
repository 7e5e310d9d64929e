package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/retry"
	"github.com/llmgate/llmgate/internal/sim"
)

// Smart routing, measured against several in-process simulators: priorities,
// throttle awareness, capacity steering, circuit breaking, per-deployment
// routes, stickiness, budgets and deadlines. Times are scaled down to
// milliseconds; every assertion on a measurement has a generous margin.

// rtTrailRE is the shape of x-llmgate-trail: name:outcome[(ra=d)], comma separated.
var rtTrailRE = regexp.MustCompile(`^[a-z0-9-]+:(\d{3}|conn_error|timeout|stream_error|200\+error|credential_error)(\(ra=[0-9.]+(ns|µs|ms|s|m|h)[0-9.hms]*\))?(,[a-z0-9-]+:(\d{3}|conn_error|timeout|stream_error|200\+error|credential_error)(\(ra=[0-9.]+(ns|µs|ms|s|m|h)[0-9.hms]*\))?)*$`)

// With three backends and one of them throttled, no client sees a 429, the
// throttled backend is routed around at once (no backoff wait: the retry
// interval is 1s, the upstream latency 20ms), it gets traffic again once
// its cool-down ends, and its 429s never count against its health.
func TestRoutingThrottledBackendIsRoutedAroundAtOnce(t *testing.T) {
	t.Parallel()
	opts := sim.Options{TTFT: 20 * time.Millisecond, Seed: 1}
	nodes := rtStartNodes(t, opts, "oai-a", "oai-b", "oai-c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	const cool = 150 * time.Millisecond
	b.Sim.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: cool})
	g := rtStart(t, []rtBackend{rtBackendOf(a), rtBackendOf(b), rtBackendOf(c)},
		"retry:\n  count: 3\n  interval: 1s\nrouting:\n  circuit:\n    failures: 2\n")

	start := time.Now()
	as := g.load(t, 90, 3, chatBody)
	elapsed := time.Since(start)
	f := rtSummary(as)
	t.Logf("90 requests in %v: %v; hits a=%d b=%d c=%d (b answered 429 %d times)",
		elapsed.Round(time.Millisecond), f, a.Hits(), b.Hits(), c.Hits(), b.Status(429))

	if f.OK != f.N {
		t.Errorf("successes: got %d/%d, want all (no client may see a 429 while capacity remains)", f.OK, f.N)
	}
	if b.Hits() > f.N/4 {
		t.Errorf("throttled backend hits: got %d, want at most %d (routed around while cooling down)", b.Hits(), f.N/4)
	}
	if b.Hits() < 2 && elapsed > 3*cool {
		t.Errorf("throttled backend hits: got %d over %v, want it tried again after its %v cool-down", b.Hits(), elapsed, cool)
	}
	// No request waits on a backoff it does not need: the slowest is far
	// below the 1s retry interval.
	if f.Max > 500*time.Millisecond {
		t.Errorf("slowest request: got %v, want far below the 1s retry interval (upstream latency 20ms)", f.Max)
	}
	throttled := 0
	wantTrail := regexp.MustCompile(`^oai-b:429\(ra=150ms\),oai-[ac]:200$`)
	for _, x := range as {
		if !rtTrailRE.MatchString(x.Trail()) {
			t.Errorf("x-llmgate-trail %q: not name:outcome[(ra=d)],...", x.Trail())
		}
		if strings.Contains(x.Trail(), "oai-b") {
			throttled++
			if !wantTrail.MatchString(x.Trail()) {
				t.Errorf("trail: got %q, want oai-b:429(ra=150ms),oai-[ac]:200", x.Trail())
			}
		}
	}
	if throttled != b.Hits() {
		t.Errorf("requests whose trail shows oai-b: got %d, want %d (one per hit)", throttled, b.Hits())
	}
	if lines := g.logLines("circuit state changed"); len(lines) > 0 {
		t.Errorf("a 429 must not count against health, but the circuit moved: %v", lines)
	}
	// The access log's "backends" field is the trail.
	byID := map[string]string{}
	waitLog(t, g.Log, len(as))
	for _, l := range g.Log.accessLines(t) {
		id, _ := l["request_id"].(string)
		bk, _ := l["backends"].(string)
		byID[id] = bk
	}
	for _, x := range as {
		if got := byID[x.Header.Get("X-Llmgate-Request-Id")]; got != x.Trail() {
			t.Errorf("access log backends: got %q, want the trail %q", got, x.Trail())
			break
		}
	}
}

// Capacity steering: backends near their quota get fewer requests before
// they ever answer 429. Four small backends (10 requests' worth of quota
// each) and one unlimited; the same sequential load with steering on and
// off; count the 429s the small ones returned.
func TestRoutingCapacitySteeringPrevents429s(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// small is the simulator of a small backend; hide drops its
		// x-ratelimit-* headers so only the declared capacity can steer.
		small    sim.Options
		hide     bool
		tpm, rpm int
	}{
		// The simulator charges 24 tokens per request (8 prompt + 16 max_tokens).
		{name: "reported tokens", small: sim.Options{TPM: 240, Seed: 2}},
		{name: "reported requests", small: sim.Options{RPM: 10, Seed: 2}},
		{name: "declared tpm", small: sim.Options{TPM: 240, Seed: 2}, hide: true, tpm: 240},
		{name: "declared rpm", small: sim.Options{RPM: 10, Seed: 2}, hide: true, rpm: 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := func(steer bool) (upstream429, smallHits, client429 int) {
				var bs []rtBackend
				var smalls []*rtNode
				for i := range 4 {
					n := rtStartNode(t, fmt.Sprintf("small-%d", i), tc.small)
					n.hideRateHeaders = tc.hide
					smalls = append(smalls, n)
					b := rtBackendOf(n)
					b.TPM, b.RPM = tc.tpm, tc.rpm
					bs = append(bs, b)
				}
				big := rtStartNode(t, "big", sim.Options{Seed: 2})
				bs = append(bs, rtBackendOf(big))
				g := rtStart(t, bs, fmt.Sprintf("retry:\n  count: 5\n  interval: 1ms\nrouting:\n  capacity_steering: %v\n", steer))
				as := g.load(t, 120, 1, chatBody)
				for _, n := range smalls {
					upstream429 += n.Status(http.StatusTooManyRequests)
					smallHits += n.Hits()
				}
				return upstream429, smallHits, rtSummary(as).Client429
			}
			on429, onHits, onClient := run(true)
			off429, offHits, offClient := run(false)
			t.Logf("%s: upstream 429s steering on=%d off=%d; small backends' hits on=%d off=%d; client 429s on=%d off=%d",
				tc.name, on429, off429, onHits, offHits, onClient, offClient)
			if off429 < 3 {
				t.Errorf("steering off: got %d upstream 429s, want the small backends to run out (≥ 3)", off429)
			}
			if on429 > off429/3 {
				t.Errorf("steering on: got %d upstream 429s, want at most a third of the %d without steering", on429, off429)
			}
			if onClient != 0 {
				t.Errorf("client 429s with steering: got %d, want none while the big backend has capacity", onClient)
			}
			if onHits == 0 {
				t.Errorf("steering on: the small backends got no traffic at all, want them used until near their quota")
			}
		})
	}
}

// The circuit of a failing backend opens after consecutive failures: it
// stops receiving traffic, then gets exactly one probe per cool-down; once
// it recovers it ramps back to full weight over slow_start. Every state
// change is logged.
func TestRoutingCircuitBreakerOpensProbesAndRamps(t *testing.T) {
	// Not parallel: the phases are timed against the cool-down.
	bad := rtStartNode(t, "bad", sim.Options{Seed: 3})
	good := rtStartNode(t, "good", sim.Options{Seed: 3})
	bad.Sim.SetFaults(sim.Faults{Fail500: 1})
	const cooldown, slowStart = 500 * time.Millisecond, 1200 * time.Millisecond
	g := rtStart(t, []rtBackend{rtBackendOf(bad), rtBackendOf(good)}, fmt.Sprintf(
		"retry:\n  count: 2\n  interval: 1ms\nrouting:\n  circuit:\n    failures: 3\n    ratio: -1\n    cooldown: %v\n  slow_start: %v\n",
		cooldown, slowStart))

	// Phase 1: closed → open after 3 failures in a row.
	var openedAt time.Time
	for i := 0; i < 200 && bad.Hits() < 3; i++ {
		if a := g.chatOnce(t); a.Status != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200 (failover to good)", i, a.Status)
		}
		openedAt = time.Now()
	}
	if bad.Hits() != 3 {
		t.Fatalf("bad backend hits: got %d, want 3 before its circuit opens", bad.Hits())
	}
	sent := 0
	for time.Since(openedAt) < cooldown/2 && sent < 40 {
		if a := g.chatOnce(t); a.Status != http.StatusOK {
			t.Fatalf("status %d, want 200", a.Status)
		}
		sent++
	}
	t.Logf("circuit open: %d requests in %v, bad backend hits stay %d", sent, time.Since(openedAt).Round(time.Millisecond), bad.Hits())
	if bad.Hits() != 3 {
		t.Errorf("bad backend hits while its circuit is open: got %d, want 3 (no traffic)", bad.Hits())
	}

	// Phase 2: after the cool-down, one probe (still failing) among
	// concurrent requests; the circuit opens again. Which request goes to
	// the half-open backend is the weighted pick's: batches of 8 go out
	// until one did (a single batch missed it about once in 256 runs), far
	// inside the next cool-down, so a second probe would still show.
	time.Sleep(time.Until(openedAt.Add(cooldown + 50*time.Millisecond)))
	var as []rtAnswer
	for batch := 0; batch < 6 && (batch == 0 || bad.Hits() < 4); batch++ {
		as = append(as, g.load(t, 8, 8, chatBody)...)
	}
	probeAt := time.Now()
	if d := probeAt.Sub(openedAt); d > 2*cooldown {
		t.Fatalf("half-open phase took until %v after the circuit opened: too slow to tell one probe per cool-down", d)
	}
	if f := rtSummary(as); f.OK != f.N {
		t.Errorf("half-open: %v, want every request served", f)
	}
	if got := bad.Hits(); got != 4 {
		t.Errorf("bad backend hits after 8 concurrent requests past the cool-down: got %d, want 4 (exactly one probe)", got)
	}

	// Phase 3: the backend recovers; the next probe closes the circuit and
	// its share ramps up from about 5% to its full 50%.
	bad.Sim.SetFaults(sim.Faults{})
	time.Sleep(time.Until(probeAt.Add(cooldown + 50*time.Millisecond)))
	type sample struct {
		at  time.Time
		bad bool
	}
	var seen []sample
	var recovered time.Time
	phase3 := time.Now()
	for recovered.IsZero() && time.Since(phase3) < 3*time.Second {
		if a := g.chatOnce(t); a.Status != http.StatusOK {
			t.Fatalf("status %d, want 200", a.Status)
		} else if a.Backend() == "bad" {
			recovered = time.Now()
		}
	}
	if recovered.IsZero() {
		t.Fatal("the recovered backend never got its probe")
	}
	// Every change of state is counted: open, half-open (the two probes),
	// open again, closed. The probe's success closes the circuit once its
	// answer is relayed, a moment after the client has it.
	wants := []string{`llmgate_circuit_transitions_total{backend="bad",to="open"} 2`,
		`llmgate_circuit_transitions_total{backend="bad",to="half_open"} 2`, `llmgate_circuit_transitions_total{backend="bad",to="closed"} 1`}
	var metrics string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, metrics = get(t, g.Srv.URL+"/metrics")
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(metrics, w) }) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: want %s:\n%s", want, grepLines(metrics, "llmgate_circuit_transitions_total"))
		}
	}
	for time.Since(recovered) < slowStart+500*time.Millisecond {
		a := g.chatOnce(t)
		if a.Status != http.StatusOK {
			t.Fatalf("status %d, want 200", a.Status)
		}
		seen = append(seen, sample{time.Now(), a.Backend() == "bad"})
	}
	t.Logf("recovery: probe succeeded %v after the cool-down ended", recovered.Sub(phase3).Round(time.Millisecond))
	share := func(from, to time.Duration) (float64, int) {
		n, k := 0, 0
		for _, s := range seen {
			if d := s.at.Sub(recovered); d >= from && d < to {
				n++
				if s.bad {
					k++
				}
			}
		}
		return float64(k) / float64(max(n, 1)), n
	}
	early, nEarly := share(0, slowStart/3)
	late, nLate := share(slowStart, slowStart+time.Hour)
	t.Logf("slow start: recovered backend's share %.0f%% of %d requests in the first third of slow_start, %.0f%% of %d after it",
		100*early, nEarly, 100*late, nLate)
	if nEarly < 10 || nLate < 10 {
		t.Fatalf("too few samples (%d early, %d late) for a share", nEarly, nLate)
	}
	if early >= late || early > 0.35 || late < 0.3 {
		t.Errorf("ramp: got %.2f early and %.2f late, want a small early share (≤ 0.35) growing to about 0.5", early, late)
	}

	// State changes are logged, in order.
	var changes []string
	for _, l := range g.logLines("circuit state changed") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, fmt.Sprintf("%v:%v->%v", m["backend"], m["from"], m["to"]))
	}
	want := []string{"bad:closed->open", "bad:open->half_open", "bad:half_open->open", "bad:open->half_open", "bad:half_open->closed"}
	if strings.Join(changes, " ") != strings.Join(want, " ") {
		t.Errorf("logged circuit changes: got %v, want %v", changes, want)
	}
}

// Connection resets and 5xx count against a backend's health: once the
// failure ratio within the window reaches routing.circuit.ratio (with
// min_requests seen), the circuit opens and the backend gets no traffic.
func TestRoutingCircuitOpensOnFailureRatio(t *testing.T) {
	t.Parallel()
	flaky := rtStartNode(t, "flaky", sim.Options{Seed: 19})
	steady := rtStartNode(t, "steady", sim.Options{Seed: 19})
	flaky.Sim.SetFaults(sim.Faults{Reset: 0.35, Fail503: 0.35})
	g := rtStart(t, []rtBackend{rtBackendOf(flaky), rtBackendOf(steady)},
		"retry:\n  count: 3\n  interval: 1ms\nrouting:\n  circuit:\n    failures: -1\n    ratio: 0.5\n    window: 10s\n    min_requests: 10\n    cooldown: 1m\n")
	as := g.load(t, 80, 1, chatBody)
	f := rtSummary(as)
	opened := g.logLines("circuit state changed")
	t.Logf("%v; flaky hits %d (503s %d), steady %d; %d circuit change(s)", f, flaky.Hits(), flaky.Status(503), steady.Hits(), len(opened))
	if f.OK != f.N {
		t.Errorf("%v, want every request served by failover", f)
	}
	if len(opened) != 1 || !strings.Contains(opened[0], `"reason":"failure ratio"`) || !strings.Contains(opened[0], `"backend":"flaky"`) {
		t.Fatalf("circuit changes: got %q, want flaky opened on its failure ratio", opened)
	}
	// It opens as soon as 10 attempts were seen with half of them failed,
	// and then gets nothing: far fewer than its half of 80 requests.
	if n := flaky.Hits(); n < 10 || n > 25 {
		t.Errorf("flaky hits: got %d, want between min_requests (10) and 25", n)
	}
}

// A backend whose circuit is open gets no traffic while another can take
// it, even when that other fails now and then: a retry after its failure
// waits the backoff and calls it again rather than the open circuit.
func TestRoutingOpenCircuitGetsNothingWhileAnotherServes(t *testing.T) {
	t.Parallel()
	broken := rtStartNode(t, "broken", sim.Options{Seed: 23})
	flaky := rtStartNode(t, "flaky", sim.Options{Seed: 23})
	broken.Sim.SetFaults(sim.Faults{Fail503: 1})
	flaky.Sim.SetFaults(sim.Faults{Fail503: 0.2})
	g := rtStart(t, []rtBackend{rtBackendOf(broken), rtBackendOf(flaky)},
		"retry:\n  count: 5\n  interval: 1ms\nrouting:\n  circuit:\n    failures: 3\n    ratio: -1\n    cooldown: 1m\n")
	as := g.load(t, 60, 1, chatBody)
	f := rtSummary(as)
	t.Logf("%v; broken hits %d, flaky hits %d (503s %d)", f, broken.Hits(), flaky.Hits(), flaky.Status(503))
	if f.OK != f.N {
		t.Errorf("%v, want every request served", f)
	}
	if flaky.Status(503) == 0 {
		t.Fatal("flaky never failed: the test shows nothing")
	}
	if n := broken.Hits(); n != 3 {
		t.Errorf("broken hits: got %d, want 3 (the failures that open its circuit, then none within the cool-down)", n)
	}
}

// Priorities: the best group takes everything, split by weight; the lower
// group takes only the spill-over while the best one is throttled; traffic
// returns to the best group as soon as it is available again.
func TestRoutingPrioritySpillOverAndReturn(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 4}, "p1-a", "p1-b", "p2")
	p1a, p1b, p2 := nodes[0], nodes[1], nodes[2]
	g := rtStart(t, []rtBackend{rtBackendOf(p1a).weight(3), rtBackendOf(p1b).weight(1), rtBackendOf(p2).priority(2)},
		"retry:\n  count: 3\n  interval: 1s\n")

	as := g.load(t, 120, 2, chatBody)
	share := float64(p1a.Hits()) / float64(max(p1a.Hits()+p1b.Hits(), 1))
	t.Logf("healthy: p1-a %d, p1-b %d (share of a %.2f, want 0.75), p2 %d", p1a.Hits(), p1b.Hits(), share, p2.Hits())
	if p2.Hits() != 0 {
		t.Errorf("priority 2 hits while priority 1 is healthy: got %d, want 0", p2.Hits())
	}
	if share < 0.6 || share > 0.9 {
		t.Errorf("weighted split in the priority group: got %.2f for weight 3 of 4, want about 0.75", share)
	}
	if f := rtSummary(as); f.OK != f.N {
		t.Errorf("healthy: %v", f)
	}

	// Spill-over: the whole priority-1 group is throttled.
	const cool = 400 * time.Millisecond
	for _, n := range []*rtNode{p1a, p1b} {
		n.Sim.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: cool})
	}
	before := p2.Hits()
	as = g.load(t, 20, 1, chatBody)
	f := rtSummary(as)
	t.Logf("priority 1 throttled: %v; p2 served %d", f, p2.Hits()-before)
	if f.OK != f.N {
		t.Errorf("spill-over: %v, want every request served by priority 2", f)
	}
	if got := rtCountBackends(as)["p2"]; got != f.N {
		t.Errorf("served by p2 while priority 1 is throttled: got %d, want %d", got, f.N)
	}
	if f.Max > 500*time.Millisecond {
		t.Errorf("spill-over waited: slowest %v, want no backoff (interval 1s)", f.Max)
	}

	// Return: once priority 1 is free again, priority 2 gets nothing.
	for _, n := range []*rtNode{p1a, p1b} {
		n.Sim.SetFaults(sim.Faults{})
	}
	time.Sleep(max(time.Until(p1a.FreeAt()), time.Until(p1b.FreeAt())) + 20*time.Millisecond)
	before = p2.Hits()
	as = g.load(t, 40, 2, chatBody)
	if got := p2.Hits() - before; got != 0 {
		t.Errorf("priority 2 hits after priority 1 recovered: got %d, want 0", got)
	}
	if f := rtSummary(as); f.OK != f.N {
		t.Errorf("after recovery: %v", f)
	}
}

// A retry is a weighted draw over the backends not yet tried: the only
// priority-1 backend always fails, so every request is retried on the
// priority-2 group, split 3:1 by weight.
func TestRoutingRetryIsWeightedOverUntried(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 5}, "first", "heavy", "light")
	first, heavy, light := nodes[0], nodes[1], nodes[2]
	first.Sim.SetFaults(sim.Faults{Fail500: 1})
	g := rtStart(t, []rtBackend{rtBackendOf(first), rtBackendOf(heavy).priority(2).weight(3), rtBackendOf(light).priority(2).weight(1)},
		"retry:\n  count: 3\n  interval: 1ms\nrouting:\n  circuit:\n    failures: -1\n    ratio: -1\n")
	as := g.load(t, 200, 4, chatBody)
	f := rtSummary(as)
	share := float64(heavy.Hits()) / float64(max(heavy.Hits()+light.Hits(), 1))
	t.Logf("%v; first %d, heavy %d, light %d: heavy's share of retries %.2f (want 0.75)", f, first.Hits(), heavy.Hits(), light.Hits(), share)
	if f.OK != f.N {
		t.Errorf("%v, want every request served on retry", f)
	}
	if first.Hits() != f.N {
		t.Errorf("first attempts: got %d on the priority-1 backend, want %d", first.Hits(), f.N)
	}
	if share < 0.62 || share > 0.88 {
		t.Errorf("retries split: got %.2f for weight 3 of 4, want about 0.75", share)
	}
	for _, x := range as {
		if !strings.HasPrefix(x.Trail(), "first:500,") {
			t.Errorf("trail: got %q, want first:500,...", x.Trail())
			break
		}
	}
}

// Every form of a backend's delay cools it down for exactly that long:
// the trail shows it, and the next request is answered 429 at once, with a
// Retry-After and retry-after-ms computed from when the backend is free.
func TestRoutingEveryRetryAfterFormCoolsDown(t *testing.T) {
	t.Parallel()
	// The date is made when the subtest runs: parallel tests may start late.
	const dateMarker = "<now+3s as an HTTP date>"
	cases := []struct {
		name   string
		header []string
		want   time.Duration // 0: check the range below
		lo, hi time.Duration
	}{
		{name: "retry-after-ms", header: []string{"retry-after-ms", "1500"}, want: 1500 * time.Millisecond},
		{name: "x-ms-retry-after-ms", header: []string{"x-ms-retry-after-ms", "1500"}, want: 1500 * time.Millisecond},
		{name: "Retry-After seconds", header: []string{"Retry-After", "2"}, want: 2 * time.Second},
		{name: "Retry-After HTTP date", header: []string{"Retry-After", dateMarker}, lo: time.Second, hi: 3 * time.Second},
		{name: "x-ratelimit-reset-tokens Go duration", header: []string{"x-ratelimit-reset-tokens", "6m0s", "x-ratelimit-remaining-tokens", "0"}, want: 6 * time.Minute},
		{name: "x-ratelimit-reset-requests ms", header: []string{"x-ratelimit-reset-requests", "250ms"}, want: 250 * time.Millisecond},
		{name: "x-ratelimit-reset-tokens seconds", header: []string{"x-ratelimit-reset-tokens", "3"}, want: 3 * time.Second},
		{name: "ms wins over seconds", header: []string{"retry-after-ms", "800", "Retry-After", "5"}, want: 800 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			header := slices.Clone(tc.header)
			for i, v := range header {
				if v == dateMarker {
					header[i] = time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
				}
			}
			rec := newRecorder()
			up := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"Rate limit is exceeded."}}`, header...))
			g := rtStart(t, []rtBackend{{Name: "a", URL: up.URL}}, "retry:\n  count: 0\n  interval: 1ms\nrouting:\n  max_wait: 10ms\n")
			first := g.chatOnce(t)
			got := time.Now()
			if first.Status != http.StatusTooManyRequests {
				t.Fatalf("first answer: status %d, want the upstream's 429", first.Status)
			}
			m := regexp.MustCompile(`^a:429\(ra=(.+)\)$`).FindStringSubmatch(first.Trail())
			if m == nil {
				t.Fatalf("trail: got %q, want a:429(ra=...)", first.Trail())
			}
			ra, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatalf("trail delay %q: %v", m[1], err)
			}
			if tc.want != 0 && ra != tc.want {
				t.Errorf("delay read: got %v, want %v", ra, tc.want)
			}
			if tc.want == 0 && (ra < tc.lo || ra > tc.hi) {
				t.Errorf("delay read: got %v, want within [%v, %v]", ra, tc.lo, tc.hi)
			}

			second := g.chatOnce(t)
			left := ra - time.Since(got)
			if n := rec.Count("a"); n != 1 {
				t.Errorf("upstream calls: got %d, want 1 (the second request must not reach a cooling backend)", n)
			}
			if second.Status != http.StatusTooManyRequests {
				t.Fatalf("second answer: status %d, want 429", second.Status)
			}
			decodeError(t, second.Body)
			ms := second.RetryAfterMs()
			// The trail shows the delay to the millisecond and the header
			// rounds the time left up to one: allow that millisecond.
			if ms > ra+time.Millisecond || (!rtWithin(ms, left, 0.1) && (left-ms).Abs() > 50*time.Millisecond) {
				t.Errorf("retry-after-ms: got %v, want about %v (10%% or 50ms) and at most %v (+1ms rounding)", ms, left, ra)
			}
			if want := (ms + time.Second - 1) / time.Second * time.Second; second.RetryAfter() != want {
				t.Errorf("Retry-After: got %v, want %v (retry-after-ms rounded up)", second.RetryAfter(), want)
			}
			long := second.Header.Get("X-Should-Retry") == "false"
			if long != (ra > 8*time.Second) {
				t.Errorf("x-should-retry: got %q for a wait of %v, want false only for a long wait", second.Header.Get("X-Should-Retry"), ms)
			}
		})
	}
}

// FuzzRoutingRetryAfter feeds any value of any delay header to the gateway
// through a throttled upstream: the gateway never fails, shows the delay it
// read (as retry.After reads it) in the trail, and answers the next request
// without calling the cooling backend, with a Retry-After no later than the
// backend's.
func FuzzRoutingRetryAfter(f *testing.F) {
	names := []string{"retry-after-ms", "x-ms-retry-after-ms", "Retry-After", "x-ratelimit-reset-tokens", "x-ratelimit-reset-requests"}
	for _, s := range []struct {
		name  uint8
		value string
	}{
		{0, "1500"}, {0, "12.5"}, {0, "-1"}, {0, "0"}, {0, "NaN"}, {0, "1e308"}, {0, "1e-7"},
		{1, "250"}, {1, " 250 "},
		{2, "3"}, {2, "0.5"}, {2, "Wed, 21 Oct 2099 07:28:00 GMT"}, {2, "Wed, 21 Oct 2015 07:28:00 GMT"}, {2, "soon"}, {2, "99999999999"},
		{3, "6m0s"}, {3, "250ms"}, {3, "1h2m3.5s"}, {3, "3"}, {3, "-5s"},
		{4, "250ms"}, {4, "0"}, {4, "1.5"},
	} {
		f.Add(s.name, s.value)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return // not a header value an upstream can send
			}
		}
		name := names[int(which)%len(names)]
		calls := 0 // the in-process upstream runs on the caller's goroutine
		upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls++
			w.Header()[http.CanonicalHeaderKey(name)] = []string{value}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"429","message":"Rate limit is exceeded."}}`))
		})
		cfg, err := config.Parse("fuzz.yaml", []byte(rtYAML([]rtBackend{{Name: "a", URL: "http://a.test"}},
			"retry:\n  count: 0\n  interval: 1ms\nrouting:\n  max_wait: 1ms\n")),
			func(k string) (string, bool) { return clientKey, k == "CLIENT_KEY" })
		if err != nil {
			t.Fatal(err)
		}
		gw, err := app.New(cfg, app.Options{Transport: inProcess{"a.test": upstream}})
		if err != nil {
			t.Fatal(err)
		}
		send := func() *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, chatPath, strings.NewReader(chatBody))
			req.Header.Set("api-key", clientKey)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			gw.Handler().ServeHTTP(w, req)
			return w
		}
		h := http.Header{}
		h[http.CanonicalHeaderKey(name)] = []string{value}
		d, ok := retry.After(h, time.Now())
		w := send()
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("%s: %q: first answer %d, want 429", name, value, w.Code)
		}
		trail := w.Header().Get("X-Llmgate-Trail")
		if !ok || d < time.Millisecond/2 {
			// A delay that rounds to nothing shows no "(ra=...)", or "(ra=0s)".
			if shown := strings.Contains(trail, "(ra="); shown != (ok && d > 0) {
				t.Fatalf("%s: %q: trail %q, but retry.After says %v, %v", name, value, trail, d, ok)
			}
			return
		}
		if name != "Retry-After" || !strings.Contains(value, ",") { // an HTTP date depends on the clock
			if want := "a:429(ra=" + d.Round(time.Millisecond).String() + ")"; trail != want {
				t.Fatalf("%s: %q: trail %q, want %q", name, value, trail, want)
			}
		}
		if d < 100*time.Millisecond {
			return // may be over before the next request
		}
		w = send()
		if w.Code != http.StatusTooManyRequests || calls != 1 {
			t.Fatalf("%s: %q (%v): second answer %d after %d upstream calls, want 429 with no new call", name, value, d, w.Code, calls)
		}
		ms, err1 := time.ParseDuration(w.Header().Get("Retry-After-Ms") + "ms")
		secs, err2 := time.ParseDuration(w.Header().Get("Retry-After") + "s")
		if err1 != nil || err2 != nil || ms <= 0 || ms > d+time.Millisecond || secs < ms || secs-ms >= time.Second {
			t.Fatalf("%s: %q (%v): Retry-After %q, retry-after-ms %q", name, value, d,
				w.Header().Get("Retry-After"), w.Header().Get("Retry-After-Ms"))
		}
	})
}

// With every backend throttled, the client's 429 carries a Retry-After
// (and retry-after-ms) within 10% of the true earliest recovery, both on
// the request that found them throttled and on the next one, which no
// backend sees.
func TestRoutingAllThrottledRetryAfterIsTrue(t *testing.T) {
	t.Parallel()
	// Priorities fix the order of attempts: 12s, 10s, then 15s.
	rtCheckAllThrottled(t, 12*time.Second, 10*time.Second, 15*time.Second)
}

// The same, when the backend tried last is the one that recovers first.
func TestRoutingAllThrottledRetryAfterCountsBackendTriedLast(t *testing.T) {
	t.Parallel()
	rtCheckAllThrottled(t, 12*time.Second, 15*time.Second, 10*time.Second)
}

// rtCheckAllThrottled runs three backends of priorities 1, 2, 3 that always
// answer 429 with the given delays (Azure-like: the test never waits for
// them) and checks the Retry-After the client gets.
func rtCheckAllThrottled(t *testing.T, delays ...time.Duration) {
	t.Helper()
	nodes := rtStartNodes(t, sim.Options{Seed: 6}, "t-a", "t-b", "t-c")
	var bs []rtBackend
	for i, d := range delays {
		nodes[i].Sim.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: d})
		bs = append(bs, rtBackendOf(nodes[i]).priority(i+1))
	}
	g := rtStart(t, bs, "retry:\n  count: 3\n  interval: 1ms\nrouting:\n  max_wait: 100ms\n")
	earliest := func() time.Duration {
		e := nodes[0].FreeAt()
		for _, n := range nodes[1:] {
			if at := n.FreeAt(); at.Before(e) {
				e = at
			}
		}
		return time.Until(e)
	}

	first := g.chatOnce(t)
	truth := earliest()
	t.Logf("first: %d trail %s Retry-After %s retry-after-ms %s; true earliest recovery in %v",
		first.Status, first.Trail(), first.Header.Get("Retry-After"), first.Header.Get("Retry-After-Ms"), truth)
	if first.Status != http.StatusTooManyRequests {
		t.Fatalf("status: got %d, want 429", first.Status)
	}
	if rtTotalHits(nodes...) != 3 {
		t.Errorf("upstream calls: got %d, want 3 (each backend once)", rtTotalHits(nodes...))
	}
	rtCheckRetryAfter(t, first, truth)
	if got := first.Header.Get("X-Should-Retry"); got != "false" {
		t.Errorf("x-should-retry: got %q, want false (every backend was tried)", got)
	}

	time.Sleep(300 * time.Millisecond)
	second := g.chatOnce(t)
	truth = earliest()
	t.Logf("second: %d Retry-After %s retry-after-ms %s; true earliest recovery in %v",
		second.Status, second.Header.Get("Retry-After"), second.Header.Get("Retry-After-Ms"), truth)
	if second.Status != http.StatusTooManyRequests {
		t.Fatalf("status: got %d, want 429", second.Status)
	}
	if rtTotalHits(nodes...) != 3 {
		t.Errorf("upstream calls: got %d, want still 3", rtTotalHits(nodes...))
	}
	if e := decodeError(t, second.Body); e.Error.Type != "rate_limit_error" {
		t.Errorf("error type: got %q, want rate_limit_error", e.Error.Type)
	}
	rtCheckRetryAfter(t, second, truth)
}

// When every backend is throttled and the one tried last is free first,
// the gateway waits for that one (the earliest), not for a later one.
func TestRoutingWaitsForEarliestEvenIfTriedLast(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	slow := rec.upstream(t, "slow", respond(http.StatusTooManyRequests, `{"error":{"code":"429"}}`, "retry-after-ms", "2000"))
	quick := rec.upstream(t, "quick", sequence(respond(http.StatusTooManyRequests, `{"error":{"code":"429"}}`, "retry-after-ms", "150"), ok()))
	g := rtStart(t, []rtBackend{{Name: "slow", URL: slow.URL}, rtBackend{Name: "quick", URL: quick.URL}.priority(2)},
		"retry:\n  count: 3\n  interval: 1ms\nrouting:\n  max_wait: 5s\n")
	a := g.chatOnce(t)
	t.Logf("%d in %v, trail %s", a.Status, a.Latency.Round(time.Millisecond), a.Trail())
	if a.Status != http.StatusOK || a.Latency > time.Second {
		t.Errorf("got %d after %v, want 200 after about 150ms (quick is free first)", a.Status, a.Latency)
	}
	if want := "slow:429(ra=2s),quick:429(ra=150ms),quick:200"; a.Trail() != want {
		t.Errorf("trail: got %q, want %q", a.Trail(), want)
	}
}

// rtCheckRetryAfter checks that a's Retry-After and retry-after-ms are within
// 10% of truth, and that Retry-After is retry-after-ms rounded up to seconds.
func rtCheckRetryAfter(t *testing.T, a rtAnswer, truth time.Duration) {
	t.Helper()
	ms, secs := a.RetryAfterMs(), a.RetryAfter()
	if !rtWithin(ms, truth, 0.1) || !rtWithin(secs, truth, 0.1) {
		t.Errorf("Retry-After %v, retry-after-ms %v: want both within 10%% of %v", secs, ms, truth)
	}
	if want := (ms + time.Second - 1) / time.Second * time.Second; secs != want {
		t.Errorf("Retry-After: got %v, want retry-after-ms %v rounded up (%v)", secs, ms, want)
	}
}

// When every backend is briefly throttled, the gateway waits for the
// earliest one if that fits the request's deadline (and then succeeds);
// if not, it answers 429 at once.
func TestRoutingWaitsForEarliestOnlyWithinDeadline(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 7}, "w-a", "w-b")
	const cool = 400 * time.Millisecond
	for _, n := range nodes {
		n.Sim.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: cool})
	}
	g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1])}, "retry:\n  count: 3\n  interval: 1ms\nrouting:\n  max_wait: 2s\n")

	// A 100ms deadline cannot wait 400ms: 429 at once.
	first := g.chatOnce(t, "X-Stainless-Timeout", "0.1")
	t.Logf("deadline 100ms: %d in %v, trail %s, retry-after-ms %s", first.Status, first.Latency.Round(time.Millisecond), first.Trail(), first.Header.Get("Retry-After-Ms"))
	if first.Status != http.StatusTooManyRequests {
		t.Fatalf("status: got %d, want 429", first.Status)
	}
	if first.Latency > 250*time.Millisecond {
		t.Errorf("latency: got %v, want an answer within the 100ms deadline, not a wait for the %v cool-down", first.Latency, cool)
	}
	if ms := first.RetryAfterMs(); ms <= 0 || ms > cool {
		t.Errorf("retry-after-ms: got %v, want in (0, %v]", ms, cool)
	}

	// Without a deadline the same wait fits: the request waits and succeeds.
	for _, n := range nodes {
		n.Sim.SetFaults(sim.Faults{})
	}
	free := max(time.Until(nodes[0].FreeAt()), time.Until(nodes[1].FreeAt()))
	earliestFree := min(time.Until(nodes[0].FreeAt()), time.Until(nodes[1].FreeAt()))
	second := g.chatOnce(t)
	t.Logf("no deadline: %d in %v (earliest backend free in %v, both in %v), trail %s", second.Status,
		second.Latency.Round(time.Millisecond), earliestFree.Round(time.Millisecond), free.Round(time.Millisecond), second.Trail())
	if second.Status != http.StatusOK {
		t.Fatalf("status: got %d, want 200 after waiting", second.Status)
	}
	if second.Latency < earliestFree-30*time.Millisecond || second.Latency > earliestFree+400*time.Millisecond {
		t.Errorf("latency: got %v, want about the %v until the earliest backend is free", second.Latency, earliestFree)
	}
	if got := second.Header.Get("X-Llmgate-Attempts"); got != "1" {
		t.Errorf("attempts: got %s, want 1 (wait, then one call)", got)
	}
}

// A total outage makes no more upstream attempts than the retry budget
// allows: the requests plus ratio×requests plus the floor.
func TestRoutingTotalOutageBoundedByRetryBudget(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 8}, "o-a", "o-b", "o-c")
	for _, n := range nodes {
		n.Sim.StartOutage(time.Minute)
	}
	const ratio, minPerSecond, requests = 0.1, 0.5, 40
	g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1]), rtBackendOf(nodes[2])}, fmt.Sprintf(
		"retry:\n  count: 3\n  interval: 1ms\nrouting:\n  circuit:\n    failures: -1\n    ratio: -1\n  retry_budget:\n    ratio: %v\n    min_per_second: %v\n",
		ratio, minPerSecond))
	as := g.load(t, requests, 2, chatBody)
	allowed := requests + int(ratio*requests+minPerSecond*10)
	hits := rtTotalHits(nodes...)
	t.Logf("total outage: %d requests made %d upstream attempts (budget allows %d; without it %d)", requests, hits, allowed, requests*4)
	if hits > allowed {
		t.Errorf("upstream attempts: got %d, want at most %d", hits, allowed)
	}
	if hits <= requests {
		t.Errorf("upstream attempts: got %d, want some retries within the budget", hits)
	}
	for _, x := range as {
		if x.Status != http.StatusServiceUnavailable {
			t.Errorf("status: got %d, want the upstream's 503", x.Status)
			break
		}
	}
}

// A content-filter 400 is returned at once, never retried, and never
// counts against the backend.
func TestRoutingContentFilterIsNotRetried(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 9}, "cf-a", "cf-b", "cf-c")
	g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1]), rtBackendOf(nodes[2])},
		"retry:\n  count: 3\n  interval: 1s\nrouting:\n  circuit:\n    failures: 2\n")
	const filtered = `{"messages":[{"role":"user","content":"[[content_filter]] something bad"}],"max_tokens":16}`
	for i := range 6 {
		a := g.call(ctxTimeout(t, 10*time.Second), chatPath, filtered)
		if a.Err != nil {
			t.Fatal(a.Err)
		}
		if a.Status != http.StatusBadRequest {
			t.Fatalf("status: got %d, want 400", a.Status)
		}
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(a.Body, &e); err != nil || e.Error.Code != "content_filter" {
			t.Errorf("body: got %s, want Azure's content_filter error", a.Body)
		}
		if got := a.Header.Get("X-Llmgate-Attempts"); got != "1" {
			t.Errorf("attempts: got %s, want 1", got)
		}
		if a.Latency > 500*time.Millisecond {
			t.Errorf("latency: got %v, want at once", a.Latency)
		}
		if hits := rtTotalHits(nodes...); hits != i+1 {
			t.Fatalf("upstream calls after %d filtered requests: got %d, want %d", i+1, hits, i+1)
		}
	}
	as := g.load(t, 30, 2, chatBody)
	if f := rtSummary(as); f.OK != f.N {
		t.Errorf("after filtered requests: %v", f)
	}
	if lines := g.logLines("circuit state changed"); len(lines) > 0 {
		t.Errorf("a content-filter 400 counted against a backend: %v", lines)
	}
	for _, n := range nodes {
		if n.Hits() < 1 {
			t.Errorf("%s: %d calls, want its share of traffic (no backend penalised)", n.Name, n.Hits())
		}
	}
}

// retry.mode apim against smart over the same faulty scenario: one backend
// of three answers 429 half of the time (Retry-After scaled down from 10s
// to 200ms so that it recurs within a short run; APIM's retry interval
// scaled from 1s to 300ms). Smart is no worse on success and better or
// equal on p99.
func TestRoutingSmartVersusAPIMOnThrottlingBackend(t *testing.T) {
	// Not parallel: it compares latencies.
	run := func(mode string) (rtFigures, int) {
		opts := sim.Options{TTFT: 10 * time.Millisecond, Seed: 10}
		nodes := rtStartNodes(t, opts, "m-a", "m-b", "m-c")
		nodes[0].Sim.SetFaults(sim.Faults{Fail429: 0.5, RetryAfter429: 200 * time.Millisecond})
		g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1]), rtBackendOf(nodes[2])},
			"retry:\n  count: 3\n  interval: 300ms\n  mode: "+mode+"\n")
		as := g.load(t, 240, 4, chatBody)
		return rtSummary(as), nodes[0].Status(http.StatusTooManyRequests)
	}
	apim, apim429 := run("apim")
	smart, smart429 := run("smart")
	t.Logf("apim : %v; upstream 429s %d", apim, apim429)
	t.Logf("smart: %v; upstream 429s %d", smart, smart429)
	if smart.OK < apim.OK {
		t.Errorf("success: smart %d < apim %d", smart.OK, apim.OK)
	}
	if smart.Client429 > apim.Client429 {
		t.Errorf("client 429s: smart %d > apim %d", smart.Client429, apim.Client429)
	}
	if smart.P99 > apim.P99 {
		t.Errorf("p99: smart %v > apim %v", smart.P99, apim.P99)
	}
	if smart.Client429 != 0 || smart.OK != smart.N {
		t.Errorf("smart: %v, want every request served", smart)
	}
	if apim429 > 0 && apim.Max < 300*time.Millisecond {
		t.Errorf("apim: slowest request %v after %d upstream 429s, want the 300ms interval waited before a retry", apim.Max, apim429)
	}
}

// A backend whose credential is refused (401) is left alone for the long
// auth cool-down, and the gateway says so loudly.
func TestRoutingAuthBrokenBackendLongCooldown(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 11}, "auth-a", "auth-b")
	broken, fine := nodes[0], nodes[1]
	broken.Sim.SetFaults(sim.Faults{AuthBreak: true})
	g := rtStart(t, []rtBackend{rtBackendOf(broken), rtBackendOf(fine)}, "retry:\n  count: 3\n  interval: 1s\n")
	as := g.load(t, 30, 1, chatBody)
	f := rtSummary(as)
	t.Logf("%v; broken backend hits %d", f, broken.Hits())
	if f.OK != f.N {
		t.Errorf("%v, want every request served by the other backend", f)
	}
	if broken.Hits() != 1 {
		t.Errorf("calls to the backend that answered 401: got %d, want 1 (then a long cool-down)", broken.Hits())
	}
	for _, x := range as {
		if strings.Contains(x.Trail(), "auth-a") && x.Trail() != "auth-a:401,auth-b:200" {
			t.Errorf("trail: got %q, want auth-a:401,auth-b:200", x.Trail())
		}
	}
	lines := g.logLines("backend refused its credential: check its api_key")
	if len(lines) != 1 {
		t.Fatalf("log: got %q, want one line", lines)
	}
	var m struct {
		Level    string `json:"level"`
		Backend  string `json:"backend"`
		Cooldown int64  `json:"cooldown"` // ns
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Level != "ERROR" || m.Backend != "auth-a" || time.Duration(m.Cooldown) < 30*time.Second {
		t.Errorf("log: got %s, want an ERROR naming auth-a with its long cool-down (default 60s)", lines[0])
	}
}

// When the only backend that can be called is the one that just failed
// (the other cooling down for longer than routing.max_wait), the retries
// go to it rather than being given up, or waited away.
func TestRoutingRetriesTheOnlyCallableBackend(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	cool := rec.upstream(t, "cool", respond(http.StatusServiceUnavailable, `{"error":{"code":"503","message":"busy"}}`, "Retry-After", "60"))
	fail := rec.upstream(t, "fail", respond(http.StatusInternalServerError, `{"error":{"code":"500","message":"boom"}}`))
	g := rtStart(t, []rtBackend{{Name: "cool", URL: cool.URL, Priority: 1}, {Name: "fail", URL: fail.URL, Priority: 2}},
		"retry:\n  count: 3\n  interval: 1ms\nrouting:\n  max_wait: 1s\n  circuit:\n    failures: -1\n    ratio: -1\n")
	a := g.chatOnce(t)
	if got, want := a.Trail(), "cool:503(ra=1m0s),fail:500,fail:500,fail:500"; got != want {
		t.Errorf("trail: got %q, want %q", got, want)
	}
	if a.Latency > 900*time.Millisecond {
		t.Errorf("took %v: want the retries at once, not a wait for the cooling backend", a.Latency)
	}
}

// When every attempt's stream starts with an error event, the last one is
// relayed as it is, and the trail says so for it too.
func TestRoutingStreamErrorEventOnEveryAttemptTrail(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 13}, "ev-a", "ev-b")
	nodes[0].Sim.SetFaults(sim.Faults{ErrorEvent: 1})
	nodes[1].Sim.SetFaults(sim.Faults{ErrorEvent: 1})
	g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1])}, "retry:\n  count: 1\n  interval: 1ms\n")
	a := g.call(ctxTimeout(t, 10*time.Second), chatPath, `{"messages":[{"role":"user","content":"Hi"}],"stream":true,"max_tokens":8}`)
	if a.Err != nil {
		t.Fatal(a.Err)
	}
	if got := a.Trail(); got != "ev-a:200+error,ev-b:200+error" && got != "ev-b:200+error,ev-a:200+error" {
		t.Errorf("trail: got %q, want both attempts as 200+error", got)
	}
}

// Azure's "HTTP 200, then an error event" at the start of a stream fails
// over before anything reaches the client.
func TestRoutingStreamErrorEventFailsOver(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 12}, "ev-a", "ev-b")
	nodes[0].Sim.SetFaults(sim.Faults{ErrorEvent: 1})
	g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1])}, "retry:\n  count: 3\n  interval: 1s\n")
	const body = `{"messages":[{"role":"user","content":"Hi"}],"stream":true,"max_tokens":8}`
	failedOver := 0
	for range 12 {
		a := g.call(ctxTimeout(t, 10*time.Second), chatPath, body)
		if a.Err != nil {
			t.Fatal(a.Err)
		}
		if a.Status != http.StatusOK || a.Backend() != "ev-b" {
			t.Fatalf("status %d from %q, want 200 from ev-b", a.Status, a.Backend())
		}
		evs := rtSSEEvents(a.Body)
		if len(evs) < 2 || evs[len(evs)-1] != "data: [DONE]" {
			t.Errorf("stream: got %q, want a complete stream ending in [DONE]", evs)
		}
		for _, e := range evs {
			if strings.Contains(e, `"error"`) {
				t.Errorf("stream reached the client with an error event: %q", e)
			}
		}
		switch a.Trail() {
		case "ev-b:200":
		case "ev-a:200+error,ev-b:200":
			failedOver++
			if a.Latency > 500*time.Millisecond {
				t.Errorf("failover latency: got %v, want no backoff", a.Latency)
			}
		default:
			t.Errorf("trail: got %q", a.Trail())
		}
	}
	if failedOver == 0 || failedOver != nodes[0].Hits() {
		t.Errorf("failovers: got %d for %d calls to ev-a, want one per call and at least one", failedOver, nodes[0].Hits())
	}
}

// Per-deployment routes: a request only goes to backends that serve its
// deployment, under the backend's own name; a backend without deployments
// serves every name unchanged; an unserved name gets 404.
func TestRoutingPerDeploymentRoutes(t *testing.T) {
	t.Parallel()
	t.Run("mapped names", func(t *testing.T) {
		t.Parallel()
		nodes := rtStartNodes(t, sim.Options{Seed: 13}, "d-a", "d-b")
		a, b := nodes[0], nodes[1]
		ba, bb := rtBackendOf(a), rtBackendOf(b)
		ba.Deployments = map[string]string{"gpt-4o": "gpt-4o-prod", "embed": "ada-a"}
		bb.Deployments = map[string]string{"gpt-4o": "gpt4o-b", "mini": "mini-b"}
		g := rtStart(t, []rtBackend{ba, bb}, "retry:\n  count: 3\n  interval: 1ms\nrouting:\n  max_wait: 100ms\n")

		nf := g.chatTo(t, "nope")
		if nf.Status != http.StatusNotFound {
			t.Fatalf("unserved deployment: status %d, want 404", nf.Status)
		}
		if e := decodeError(t, nf.Body); e.Error.Code != "DeploymentNotFound" {
			t.Errorf("unserved deployment: code %q, want DeploymentNotFound", e.Error.Code)
		}
		if n := rtTotalHits(a, b); n != 0 {
			t.Errorf("upstream calls for an unserved deployment: got %d, want 0", n)
		}

		for range 10 {
			if x := g.chatTo(t, "mini"); x.Status != http.StatusOK || x.Backend() != "d-b" {
				t.Fatalf("mini: %d from %q, want 200 from d-b", x.Status, x.Backend())
			}
		}
		for range 30 {
			if x := g.chatTo(t, "gpt-4o"); x.Status != http.StatusOK {
				t.Fatalf("gpt-4o: status %d", x.Status)
			}
		}
		count := func(paths []string) map[string]int {
			m := map[string]int{}
			for _, p := range paths {
				m[p]++
			}
			return m
		}
		pa, pb := count(a.Paths()), count(b.Paths())
		t.Logf("d-a saw %v; d-b saw %v", pa, pb)
		const suffix = "/chat/completions"
		if len(pa) != 1 || pa["/openai/deployments/gpt-4o-prod"+suffix] == 0 {
			t.Errorf("d-a paths: got %v, want only gpt-4o-prod", pa)
		}
		if len(pb) != 2 || pb["/openai/deployments/mini-b"+suffix] != 10 || pb["/openai/deployments/gpt4o-b"+suffix] == 0 {
			t.Errorf("d-b paths: got %v, want mini-b ×10 and gpt4o-b", pb)
		}

		// The only backend serving mini is throttled: mini is not sent
		// elsewhere, the client gets the 429.
		b.Sim.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: 5 * time.Second})
		x := g.chatTo(t, "mini")
		if x.Status != http.StatusTooManyRequests || x.Trail() != "d-b:429(ra=5s)" {
			t.Errorf("mini with its only backend throttled: status %d, trail %q, want 429 after d-b:429(ra=5s)", x.Status, x.Trail())
		}
		for _, p := range a.Paths() {
			if strings.Contains(p, "mini") {
				t.Errorf("d-a received %s, a deployment it does not serve", p)
			}
		}
	})
	t.Run("wildcard backend", func(t *testing.T) {
		t.Parallel()
		nodes := rtStartNodes(t, sim.Options{Seed: 13}, "w-mapped", "w-any")
		mapped, anyName := nodes[0], nodes[1]
		bm := rtBackendOf(mapped)
		bm.Deployments = map[string]string{"gpt-4o": "gpt-4o-prod"}
		g := rtStart(t, []rtBackend{bm, rtBackendOf(anyName)}, "retry:\n  count: 3\n  interval: 1ms\n")
		for range 10 {
			if x := g.chatTo(t, "other-model"); x.Status != http.StatusOK || x.Backend() != "w-any" {
				t.Fatalf("other-model: %d from %q, want 200 from w-any", x.Status, x.Backend())
			}
		}
		for range 30 {
			if x := g.chatTo(t, "gpt-4o"); x.Status != http.StatusOK {
				t.Fatalf("gpt-4o: status %d", x.Status)
			}
		}
		for _, p := range mapped.Paths() {
			if p != "/openai/deployments/gpt-4o-prod/chat/completions" {
				t.Errorf("w-mapped received %s, want only its gpt-4o-prod", p)
			}
		}
		seen := map[string]bool{}
		for _, p := range anyName.Paths() {
			seen[p] = true
		}
		if !seen["/openai/deployments/other-model/chat/completions"] || !seen["/openai/deployments/gpt-4o/chat/completions"] {
			t.Errorf("w-any paths: got %v, want other-model and gpt-4o unchanged", seen)
		}
		if mapped.Hits() == 0 {
			t.Errorf("w-mapped got no gpt-4o traffic")
		}
	})
}

// Stickiness keeps a prompt_cache_key on one backend, and never blocks
// failover: when that backend throttles, the conversation moves at once
// and stays on its new backend.
func TestRoutingStickyKeyKeepsBackendAndFailsOver(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 14}, "s-a", "s-b", "s-c")
	byName := map[string]*rtNode{}
	var bs []rtBackend
	for _, n := range nodes {
		byName[n.Name] = n
		bs = append(bs, rtBackendOf(n))
	}
	g := rtStart(t, bs, "retry:\n  count: 3\n  interval: 1s\nrouting:\n  sticky:\n    key: prompt_cache_key\n    ttl: 1m\n")
	body := func(key string) string {
		return `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":16,"prompt_cache_key":"` + key + `"}`
	}
	ctx := ctxTimeout(t, 20*time.Second)
	post := func(key string) rtAnswer {
		a := g.call(ctx, chatPath, body(key))
		if a.Err != nil || a.Status != http.StatusOK {
			t.Fatalf("key %s: %v status %d", key, a.Err, a.Status)
		}
		return a
	}

	home := post("conv-1").Backend()
	for range 15 {
		if got := post("conv-1").Backend(); got != home {
			t.Fatalf("conv-1 moved from %s to %s while %s was available", home, got, home)
		}
	}
	spread := map[string]bool{}
	for i := range 12 {
		spread[post(fmt.Sprintf("other-%d", i)).Backend()] = true
	}
	if len(spread) < 2 {
		t.Errorf("12 different keys all went to %v, want them spread", spread)
	}

	byName[home].Sim.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: 5 * time.Second})
	moved := post("conv-1")
	t.Logf("conv-1 stuck to %s; after it throttled: %s in %v", home, moved.Trail(), moved.Latency.Round(time.Millisecond))
	if !regexp.MustCompile(`^` + home + `:429\(ra=5s\),s-[abc]:200$`).MatchString(moved.Trail()) {
		t.Errorf("trail: got %q, want %s:429(ra=5s) then another backend", moved.Trail(), home)
	}
	if moved.Latency > 500*time.Millisecond {
		t.Errorf("failover latency: got %v, want no wait", moved.Latency)
	}
	next := moved.Backend()
	hits := byName[home].Hits()
	for range 10 {
		if got := post("conv-1").Backend(); got != next {
			t.Errorf("conv-1 after failover: got %s, want it to stay on %s", got, next)
		}
	}
	if byName[home].Hits() != hits {
		t.Errorf("the throttled home backend was called again during its cool-down")
	}
}

// max_inflight caps the requests a backend has at once; the lower
// priority group takes the spill-over.
func TestRoutingMaxInflight(t *testing.T) {
	t.Parallel()
	capped := func(t *testing.T, clients int) (rtFigures, []*rtNode, map[int]int) {
		opts := sim.Options{TTFT: 100 * time.Millisecond, Seed: 15}
		nodes := rtStartNodes(t, opts, "c-a", "c-b")
		ba, bb := rtBackendOf(nodes[0]), rtBackendOf(nodes[1])
		ba.MaxInflight, bb.MaxInflight = 1, 2
		g := rtStart(t, []rtBackend{ba, bb}, "retry:\n  count: 3\n  interval: 1ms\nrouting:\n  max_wait: 3s\n")
		as := g.load(t, 3*clients, clients, chatBody)
		statuses := map[int]int{}
		for _, a := range as {
			statuses[a.Status]++
		}
		f := rtSummary(as)
		t.Logf("%d clients, caps 1+2: %v; statuses %v; peak in flight c-a %d, c-b %d",
			clients, f, statuses, nodes[0].peak.Load(), nodes[1].peak.Load())
		if p := nodes[0].peak.Load(); p > 1 {
			t.Errorf("c-a in flight: peak %d, want at most max_inflight 1", p)
		}
		if p := nodes[1].peak.Load(); p > 2 {
			t.Errorf("c-b in flight: peak %d, want at most max_inflight 2", p)
		}
		return f, nodes, statuses
	}
	t.Run("cap holds", func(t *testing.T) {
		t.Parallel()
		// As many clients as slots: the gateway must put each request
		// where a slot is free, never a second one on c-a.
		f, nodes, _ := capped(t, 3)
		if f.OK != f.N {
			t.Errorf("%v, want every request served", f)
		}
		if nodes[0].Hits() == 0 {
			t.Errorf("c-a got no traffic")
		}
	})
	t.Run("oversubscribed", func(t *testing.T) {
		t.Parallel()
		// Twice as many clients as slots: the caps still hold; requests
		// wait for a slot (the gateway polls; see the report on starvation).
		f, _, statuses := capped(t, 6)
		if f.OK < f.N/2 || statuses[http.StatusOK]+statuses[http.StatusServiceUnavailable] != f.N {
			t.Errorf("%v %v, want most served and the rest the gateway's 503", f, statuses)
		}
	})
	t.Run("spill-over to lower priority", func(t *testing.T) {
		t.Parallel()
		opts := sim.Options{TTFT: 80 * time.Millisecond, Seed: 15}
		nodes := rtStartNodes(t, opts, "sp-1", "sp-2")
		b1 := rtBackendOf(nodes[0])
		b1.MaxInflight = 1
		g := rtStart(t, []rtBackend{b1, rtBackendOf(nodes[1]).priority(2)}, "retry:\n  count: 3\n  interval: 1ms\n")
		as := g.load(t, 16, 4, chatBody)
		f := rtSummary(as)
		t.Logf("4 clients, priority 1 capped at 1: %v; sp-1 %d (peak %d), sp-2 %d", f, nodes[0].Hits(), nodes[0].peak.Load(), nodes[1].Hits())
		if p := nodes[0].peak.Load(); p > 1 {
			t.Errorf("sp-1 in flight: peak %d, want at most 1", p)
		}
		if nodes[1].Hits() == 0 || nodes[0].Hits() < 2 {
			t.Errorf("sp-1 %d, sp-2 %d: want priority 1 kept busy and priority 2 taking the overflow", nodes[0].Hits(), nodes[1].Hits())
		}
		if f.OK != f.N {
			t.Errorf("%v", f)
		}
	})
}

// A request with x-stainless-retry-count > 0 is already a client retry:
// the gateway makes fewer attempts for it.
func TestRoutingClientRetryCountReducesRetries(t *testing.T) {
	t.Parallel()
	nodes := rtStartNodes(t, sim.Options{Seed: 16}, "r-a", "r-b", "r-c")
	for _, n := range nodes {
		n.Sim.SetFaults(sim.Faults{Fail500: 1})
	}
	g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1]), rtBackendOf(nodes[2])},
		"retry:\n  count: 5\n  interval: 1ms\nrouting:\n  circuit:\n    failures: -1\n    ratio: -1\n")
	fresh := g.chatOnce(t)
	freshHits := rtTotalHits(nodes...)
	again := g.chatOnce(t, "X-Stainless-Retry-Count", "2")
	againHits := rtTotalHits(nodes...) - freshHits
	t.Logf("first client attempt: %d upstream calls (%s); client retry: %d (%s)", freshHits, fresh.Trail(), againHits, again.Trail())
	if freshHits != 6 || fresh.Header.Get("X-Llmgate-Attempts") != "6" {
		t.Errorf("first client attempt: %d calls, attempts %s, want 6", freshHits, fresh.Header.Get("X-Llmgate-Attempts"))
	}
	if againHits >= freshHits || againHits > 3 {
		t.Errorf("client retry: %d upstream calls, want fewer (at most 3: one per backend)", againHits)
	}
	for _, a := range []rtAnswer{fresh, again} {
		if a.Status != http.StatusInternalServerError {
			t.Errorf("status: got %d, want the upstream's 500", a.Status)
		}
		if got := a.Header.Get("X-Should-Retry"); got != "false" {
			t.Errorf("x-should-retry: got %q, want false (every backend was tried)", got)
		}
	}
}

// The total deadline (timeouts.total, or a shorter x-stainless-timeout)
// bounds every attempt and wait.
func TestRoutingDeadlineBoundsAllAttempts(t *testing.T) {
	t.Parallel()
	t.Run("x-stainless-timeout", func(t *testing.T) {
		t.Parallel()
		nodes := rtStartNodes(t, sim.Options{Seed: 17}, "h-a", "h-b")
		for _, n := range nodes {
			n.Sim.SetFaults(sim.Faults{Hang: 1})
		}
		g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1])}, "retry:\n  count: 3\n  interval: 1ms\ntimeouts:\n  total: 30s\n")
		a := g.chatOnce(t, "X-Stainless-Timeout", "0.4")
		t.Logf("hanging backends, x-stainless-timeout 0.4: %d in %v, trail %s", a.Status, a.Latency.Round(time.Millisecond), a.Trail())
		if a.Status != http.StatusGatewayTimeout {
			t.Errorf("status: got %d, want 504", a.Status)
		}
		if a.Latency < 350*time.Millisecond || a.Latency > 1500*time.Millisecond {
			t.Errorf("latency: got %v, want about 400ms", a.Latency)
		}
	})
	// The Node SDK sends whole seconds, truncated (a 1.9 s timeout comes
	// as "1"): the gateway must not give up before the client does. A
	// backend 1.3 s slow answers within the client's 1.9 s.
	t.Run("x-stainless-timeout whole seconds", func(t *testing.T) {
		t.Parallel()
		nodes := rtStartNodes(t, sim.Options{Seed: 17}, "w-a", "w-b")
		for _, n := range nodes {
			n.Sim.SetFaults(sim.Faults{SlowHeaders: 1, SlowHeadersDelay: 1300 * time.Millisecond})
		}
		g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1])}, "retry:\n  count: 3\n  interval: 1ms\ntimeouts:\n  total: 30s\n")
		a := g.chatOnce(t, "X-Stainless-Timeout", "1")
		if a.Status != http.StatusOK {
			t.Errorf("slow backend, x-stainless-timeout 1 (a client waiting up to 2 s): %d in %v (%s), want 200", a.Status, a.Latency.Round(time.Millisecond), a.Trail())
		}
	})
	t.Run("timeouts.total", func(t *testing.T) {
		t.Parallel()
		nodes := rtStartNodes(t, sim.Options{Seed: 17}, "f-a", "f-b")
		for _, n := range nodes {
			n.Sim.SetFaults(sim.Faults{Fail500: 1})
		}
		g := rtStart(t, []rtBackend{rtBackendOf(nodes[0]), rtBackendOf(nodes[1])},
			"retry:\n  count: 10\n  interval: 200ms\ntimeouts:\n  total: 500ms\nrouting:\n  circuit:\n    failures: -1\n    ratio: -1\n")
		a := g.chatOnce(t)
		t.Logf("failing backends, 10 retries 200ms apart, total 500ms: %d in %v after %s attempts (%s)",
			a.Status, a.Latency.Round(time.Millisecond), a.Header.Get("X-Llmgate-Attempts"), a.Trail())
		if a.Latency > 1200*time.Millisecond {
			t.Errorf("latency: got %v, want within about the 500ms total", a.Latency)
		}
		if n := rtTotalHits(nodes...); n > 4 {
			t.Errorf("upstream calls: got %d, want few (the deadline cuts the retries)", n)
		}
		if a.Status < 500 {
			t.Errorf("status: got %d, want a 5xx", a.Status)
		}
	})
}

// A client's own deadline (x-stainless-timeout) bounds the wait for an
// answer, not a stream already flowing to it: the SDK keeps that time
// itself. timeouts.total still bounds it, and ends it with a word of why.
// Neither is the backend's fault.
func TestRoutingDeadlineAndFlowingStreams(t *testing.T) {
	t.Parallel()
	const body = `{"messages":[{"role":"user","content":"Hi"}],"stream":true,"max_tokens":12}`
	t.Run("x-stainless-timeout", func(t *testing.T) {
		t.Parallel()
		n := rtStartNode(t, "s", sim.Options{TokenInterval: 50 * time.Millisecond, Seed: 19})
		g := rtStart(t, []rtBackend{rtBackendOf(n)}, "timeouts:\n  total: 30s\n")
		a := g.call(ctxTimeout(t, 10*time.Second), chatPath, body, "X-Stainless-Timeout", "0.2")
		evs := rtSSEEvents(a.Body)
		if a.Err != nil || a.Status != 200 || len(evs) == 0 || evs[len(evs)-1] != "data: [DONE]" {
			t.Fatalf("got %d %v after %v, events %q; want the whole stream", a.Status, a.Err, a.Latency, evs)
		}
		if a.Latency < 400*time.Millisecond {
			t.Errorf("the stream took %v: want it to outlast the 200ms client deadline", a.Latency)
		}
	})
	t.Run("timeouts.total", func(t *testing.T) {
		t.Parallel()
		n := rtStartNode(t, "s", sim.Options{TokenInterval: 50 * time.Millisecond, Seed: 19})
		g := rtStart(t, []rtBackend{rtBackendOf(n)}, "timeouts:\n  total: 250ms\n")
		a := g.call(ctxTimeout(t, 10*time.Second), chatPath, body)
		evs := rtSSEEvents(a.Body)
		if a.Status != 200 || len(evs) == 0 || !strings.Contains(evs[len(evs)-1], `"code":"request_timeout"`) {
			t.Fatalf("got %d %v, events %q; want the stream ended by a request_timeout error event", a.Status, a.Err, evs)
		}
		waitLog(t, g.Log, 1)
		if line := g.Log.accessLines(t)[0]; line["err"] != "the request's time limit ran out" {
			t.Errorf("access log err: got %v, want the time limit named", line["err"])
		}
		_, metrics := get(t, g.Srv.URL+"/metrics")
		if !strings.Contains(metrics, `llmgate_upstream_attempts_total{backend="s",outcome="deadline"} 1`) {
			t.Errorf("metrics: want the attempt counted as deadline, not against the backend:\n%s", grepLines(metrics, "llmgate_upstream_attempts_total"))
		}
	})
}

func grepLines(text, substr string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}

// The routing policies do what the README says: least_inflight sends
// work to the backend with fewer requests in flight, latency favours the
// faster backend, headroom weighs by the fraction of capacity left.
func TestRoutingPolicies(t *testing.T) {
	t.Parallel()
	t.Run("least_inflight", func(t *testing.T) {
		t.Parallel()
		slow := rtStartNode(t, "slow", sim.Options{TTFT: 120 * time.Millisecond, Seed: 18})
		fast := rtStartNode(t, "fast", sim.Options{TTFT: 5 * time.Millisecond, Seed: 18})
		g := rtStart(t, []rtBackend{rtBackendOf(slow), rtBackendOf(fast)}, "routing:\n  policy: least_inflight\n")
		as := g.load(t, 80, 4, chatBody)
		share := float64(fast.Hits()) / float64(rtTotalHits(slow, fast))
		t.Logf("least_inflight, 4 clients: fast %d, slow %d (fast share %.2f; weighted would give 0.5); %v", fast.Hits(), slow.Hits(), share, rtSummary(as))
		if share < 0.7 {
			t.Errorf("fast backend's share: got %.2f, want most requests (≥ 0.7)", share)
		}
	})
	t.Run("latency", func(t *testing.T) {
		t.Parallel()
		slow := rtStartNode(t, "slow", sim.Options{TTFT: 60 * time.Millisecond, Seed: 18})
		fast := rtStartNode(t, "fast", sim.Options{TTFT: 3 * time.Millisecond, Seed: 18})
		g := rtStart(t, []rtBackend{rtBackendOf(slow), rtBackendOf(fast)}, "routing:\n  policy: latency\n")
		g.load(t, 10, 1, chatBody) // warm-up: both get measured
		s0, f0 := slow.Hits(), fast.Hits()
		g.load(t, 60, 1, chatBody)
		ds, df := slow.Hits()-s0, fast.Hits()-f0
		share := float64(df) / float64(ds+df)
		t.Logf("latency policy: fast %d, slow %d after warm-up (fast share %.2f)", df, ds, share)
		if share < 0.75 {
			t.Errorf("fast backend's share: got %.2f, want ≥ 0.75", share)
		}
	})
	t.Run("headroom", func(t *testing.T) {
		t.Parallel()
		share := func(policy string) float64 {
			low := rtStartNode(t, "low", sim.Options{TPM: 40000, Seed: 18})
			full := rtStartNode(t, "full", sim.Options{Seed: 18})
			// Use 70% of low's quota behind the gateway's back.
			req := httptest.NewRequest(http.MethodPost, chatPath,
				strings.NewReader(`{"messages":[{"role":"user","content":"Hi"}],"max_tokens":27992}`))
			w := httptest.NewRecorder()
			low.Sim.ServeHTTP(w, req)
			if w.Code != http.StatusOK || w.Header().Get("X-Ratelimit-Remaining-Tokens") != "12000" {
				t.Fatalf("priming: %d, remaining %q", w.Code, w.Header().Get("X-Ratelimit-Remaining-Tokens"))
			}
			g := rtStart(t, []rtBackend{rtBackendOf(low), rtBackendOf(full)}, "routing:\n  policy: "+policy+"\n")
			for i := 0; low.Hits() == 0 && i < 50; i++ {
				g.chatOnce(t) // until low reported its headroom
			}
			l0, f0 := low.Hits(), full.Hits()
			g.load(t, 100, 1, chatBody)
			dl, df := low.Hits()-l0, full.Hits()-f0
			return float64(dl) / float64(dl+df)
		}
		head, weighted := share("headroom"), share("weighted")
		t.Logf("backend with 30%% of its quota left: share %.2f under headroom (want about 0.23), %.2f under weighted (want about 0.5)", head, weighted)
		if head > 0.38 {
			t.Errorf("headroom: share %.2f, want about 0.3/1.3", head)
		}
		if weighted < 0.35 {
			t.Errorf("weighted: share %.2f, want about 0.5", weighted)
		}
	})
}
