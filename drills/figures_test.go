package drills

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Figures: what a drill measured, and the assertions on them.

// figures sum up a drill's results.
type figures struct {
	name     string
	n        int
	outcomes [numOutcomes]int
	status   map[int]int
	// attempts per request (from x-llmgate-attempts), over requests that had any
	attemptsSum, attemptsMax, withAttempts int
	retries                                int
	clientLat                              samples         // of ok answers
	upLat                                  []time.Duration // the upstreams' own 2xx answers
	upstreamCalls                          int64
	elapsed                                time.Duration
}

func summarize(name string, rs []result, elapsed time.Duration, ups ...*upstream) *figures {
	f := newFigures(name)
	for _, r := range rs {
		f.add(r)
	}
	f.finish(elapsed, ups...)
	return f
}

func newFigures(name string) *figures { return &figures{name: name, status: map[int]int{}} }

// maxKept bounds the arrival times and latencies kept, so a long soak
// measures the gateway's memory rather than its own.
const maxKept = 20000

// samples keeps up to maxKept durations: all of them while there are fewer,
// then a uniform sample (reservoir). Its memory is allocated whole on first
// use, so it never grows while a soak is measured. Not safe for concurrent use.
type samples struct {
	buf  []time.Duration
	seen uint64
}

func (s *samples) add(d time.Duration) {
	if s.buf == nil {
		s.buf = make([]time.Duration, 0, maxKept)
	}
	s.seen++
	if len(s.buf) < maxKept {
		s.buf = append(s.buf, d)
		return
	}
	// Reservoir sampling with a cheap deterministic mix in place of a PRNG.
	x := s.seen * 0x9e3779b97f4a7c15
	if i := (x ^ x>>29) % s.seen; i < maxKept {
		s.buf[i] = d
	}
}

func (s *samples) values() []time.Duration { return slices.Clone(s.buf) }

func (s *samples) len() int { return len(s.buf) }

// add counts one result. Not safe for concurrent use.
func (f *figures) add(r result) {
	f.n++
	f.outcomes[r.out]++
	if r.status != 0 {
		f.status[r.status]++
	}
	if r.attempts > 0 {
		f.withAttempts++
		f.attemptsSum += r.attempts
		f.attemptsMax = max(f.attemptsMax, r.attempts)
		f.retries += r.attempts - 1
	}
	if r.out == okAnswer {
		f.clientLat.add(r.latency)
	}
}

// finish adds the upstreams' own figures.
func (f *figures) finish(elapsed time.Duration, ups ...*upstream) {
	f.elapsed = elapsed
	for _, u := range ups {
		f.upLat = append(f.upLat, u.latencies()...)
		f.upstreamCalls += u.received.Load()
	}
}

func (f *figures) ok() int { return f.outcomes[okAnswer] }

func (f *figures) okRate() float64 { return float64(f.ok()) / float64(max(f.n, 1)) }

func (f *figures) meanAttempts() float64 {
	return float64(f.attemptsSum) / float64(max(f.withAttempts, 1))
}

func (f *figures) clientP(p float64) time.Duration { return percentile(f.clientLat.buf, p) }

func (f *figures) upP(p float64) time.Duration { return percentile(f.upLat, p) }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// unanswered counts the requests that did not get exactly one answer or one clear error.
func (f *figures) unanswered() int {
	return f.outcomes[lost] + f.outcomes[hung] + f.outcomes[truncated] + f.outcomes[double]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// row is the figures as a Markdown table row (see header).
func (f *figures) row() string {
	return fmt.Sprintf("| %s | %d | %.1f %% | %d | %d | %d/%d/%d/%d | %.2f / %d | %d | %s / %s | %s / %s | %d |",
		f.name, f.n, 100*f.okRate(), f.outcomes[errorAnswer]+f.outcomes[aborted], f.status[http.StatusTooManyRequests],
		f.outcomes[lost], f.outcomes[hung], f.outcomes[double], f.outcomes[truncated],
		f.meanAttempts(), f.attemptsMax, f.retries,
		ms(f.clientP(0.5)), ms(f.clientP(0.99)), ms(f.upP(0.5)), ms(f.upP(0.99)), f.upstreamCalls)
}

const figuresHeader = "| drill | requests | ok | clear errors | 429 to clients | lost/hung/double/truncated | attempts mean / max | retries | p50 / p99 ms | upstream p50 / p99 ms | upstream calls |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|"

// report logs the figures and appends them to $LLMGATE_DRILLS_REPORT.
func (f *figures) report(t testing.TB) {
	t.Helper()
	now := time.Now()
	stall := ""
	if w := stalls.worst(now.Add(-f.elapsed), now); w > 0 {
		stall = fmt.Sprintf("\nthe test process stood still for up to %v during this drill (a busy machine): timeouts may have fired early", w.Round(time.Millisecond))
	}
	t.Logf("figures (%s form, %v):\n%s\n%s\nstatuses %v, outcomes %v%s", form(), f.elapsed.Round(time.Millisecond), figuresHeader, f.row(), f.status, f.outcomeMap(), stall)
	appendReport(t, f.row())
}

func (f *figures) outcomeMap() map[string]int {
	m := map[string]int{}
	for o, n := range f.outcomes {
		if n > 0 {
			m[outcome(o).String()] = n
		}
	}
	return m
}

func form() string {
	if long() {
		return "long"
	}
	return "short"
}

var reportMu sync.Mutex

// appendReport appends a line to the file named by LLMGATE_DRILLS_REPORT, if set.
func appendReport(t testing.TB, line string) {
	t.Helper()
	path := os.Getenv("LLMGATE_DRILLS_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("report: %v", err)
		return
	}
	defer f.Close()
	_, _ = fmt.Fprintf(f, "%s [%s]\n", line, form())
}

// ---------------------------------------------------------------------------
// Common assertions.

// expectAllAnswered asserts that every request got exactly one complete
// answer or one clear error: none lost, none hung, none answered twice,
// none silently truncated.
func expectAllAnswered(t testing.TB, f *figures, rs []result) {
	t.Helper()
	if n := f.unanswered(); n > 0 {
		shown := 0
		for _, r := range rs {
			if r.out == lost || r.out == hung || r.out == truncated || r.out == double {
				if shown < 5 {
					t.Errorf("request %d (%s): %s: status %d, trail %q, err %v", r.i, r.kind, r.out, r.status, r.trail, r.err)
				}
				shown++
			}
		}
		t.Errorf("%d of %d requests were lost, hung, truncated or answered twice; want 0 (%v)", n, f.n, f.outcomeMap())
	}
}

// expectOneLogLinePerAnswer asserts the gateway logged exactly one access
// line per request that reached it. A request's line is written once its
// answer is complete, so the client may hold the last answer a moment
// before its line lands: the count may catch up for a bounded while.
func expectOneLogLinePerAnswer(t testing.TB, g *gateway, f *figures) {
	t.Helper()
	want := f.n - f.outcomes[lost]
	if got := g.log.awaitAccessLines(want, margin(2*time.Second)); got != want {
		t.Errorf("access log lines = %d, want %d (one per answered request)", got, want)
	}
}

// expectLatency asserts the gateway adds at most extra50 to the upstream's
// own p50, and at most extra99 to its p99.
func expectLatency(t testing.TB, f *figures, extra50, extra99 time.Duration) {
	t.Helper()
	expectLatencyPlus(t, f, extra50, extra99, 0)
}

// expectLatencyPlus is expectLatency with a fixed cost (a timeout the
// scenario must wait out) added to the p99 bound, unwidened by margin.
func expectLatencyPlus(t testing.TB, f *figures, extra50, extra99, fixed99 time.Duration) {
	t.Helper()
	extra50, extra99 = margin(extra50), margin(extra99)+fixed99
	if f.clientLat.len() == 0 || len(f.upLat) == 0 {
		return
	}
	if got, lim := f.clientP(0.5), f.upP(0.5)+extra50; got > lim {
		t.Errorf("client p50 = %v, want <= upstream p50 %v + %v", got, f.upP(0.5), extra50)
	}
	if got, lim := f.clientP(0.99), f.upP(0.99)+extra99; got > lim {
		t.Errorf("client p99 = %v, want <= upstream p99 %v + %v", got, f.upP(0.99), extra99)
	}
}

// margin widens a latency margin under the race detector, which slows the
// gateway, the simulators and the clients alike (all in one process).
func margin(d time.Duration) time.Duration {
	if raceEnabled {
		return 3 * d
	}
	return d
}

// expectNoLeak asserts no upstream received a client or admin secret.
func expectNoLeak(t testing.TB, ups ...*upstream) {
	t.Helper()
	for _, u := range ups {
		if n := u.leaks.Load(); n > 0 {
			t.Errorf("upstream %s received a client secret in %d requests; want 0", u.name, n)
		}
	}
}

// trailCount counts the attempts in the results' trails that went to backend name.
func trailCount(rs []result, name string) int {
	n := 0
	for _, r := range rs {
		for e := range strings.SplitSeq(r.trail, ",") {
			if strings.HasPrefix(e, name+":") {
				n++
			}
		}
	}
	return n
}
