// Package ratelimittest is the conformance suite that every ratelimit.Store
// passes, and a shared Admit benchmark. Like testing/fstest, it is imported
// only by tests.
package ratelimittest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

// Harness adapts one Store implementation to the suite.
type Harness struct {
	// New returns an empty store and its clock; it closes the store with t.Cleanup.
	New func(t *testing.T) Env
	// Window is the rolling window of the window tests. With a real clock
	// keep it short (1-2s): the suite waits for it several times.
	Window time.Duration
	// Margin is how long before RetryAfter the suite checks that the request
	// is still refused: 1ns for a fake clock, room for scheduling delays for
	// a real one.
	Margin time.Duration
	// FakeClock says Env.Sleep moves a fake clock: RetryAfter must be exact,
	// and the suite may jump to the end of a day or month. With a real clock,
	// times are checked against the local clock read around each call, and
	// a check whose timing premise a stalled machine broke skips the test.
	FakeClock bool
}

// Env is one store under test and its clock.
type Env struct {
	Store ratelimit.Store
	// Now is the store's clock (for a Redis store: the local clock, which
	// approximates the server's).
	Now func() time.Time
	// Sleep lets d pass on the store's clock.
	Sleep func(d time.Duration)
}

// TestStore runs the conformance suite; subtests run in parallel, each on a
// fresh store.
func TestStore(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness, e Env)
	}{
		{"Ping", testPing},
		{"Unlimited", testUnlimited},
		{"InvalidArguments", testInvalid},
		{"RPM", testRPM},
		{"RPMRetryAfter", testRPMRetryAfter},
		{"TPM", testTPM},
		{"TPMRetryAfter", testTPMRetryAfter},
		{"SlidingWindow", testSliding},
		{"ReconcileWindow", testReconcileWindow},
		{"ReconcileQuota", testReconcileQuota},
		{"DailyQuota", testDailyQuota},
		{"MonthlyQuota", testMonthlyQuota},
		{"LongestWaitWins", testLongestWait},
		{"Concurrent", testConcurrent},
		{"Usage", testUsage},
		{"Throttles", testThrottles},
		{"OpenCircuits", testOpenCircuits},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h, h.New(t))
		})
	}
}

func admit(t *testing.T, e Env, key string, l ratelimit.Limits, tokens int64) ratelimit.Decision {
	t.Helper()
	d, err := e.Store.Admit(t.Context(), key, l, tokens)
	if err != nil {
		t.Fatalf("Admit(%q, %d): %v", key, tokens, err)
	}
	if d.Allowed != (d.Reservation != "") {
		t.Fatalf("Admit(%q, %d): Allowed %v with reservation %q", key, tokens, d.Allowed, d.Reservation)
	}
	if d.Allowed && (d.Reason != "" || d.RetryAfter != 0) {
		t.Fatalf("Admit(%q, %d): allowed with reason %q, retry after %v", key, tokens, d.Reason, d.RetryAfter)
	}
	return d
}

func mustAllow(t *testing.T, e Env, key string, l ratelimit.Limits, tokens int64) ratelimit.Decision {
	t.Helper()
	d := admit(t, e, key, l, tokens)
	if !d.Allowed {
		t.Fatalf("Admit(%q, %d): refused (%s, retry after %v), want allowed", key, tokens, d.Reason, d.RetryAfter)
	}
	return d
}

// stamp is a decision and the local times around the call, which read the
// store's clock in between.
type stamp struct {
	ratelimit.Decision
	before, after time.Time
}

// allowAt is mustAllow, stamped.
func allowAt(t *testing.T, e Env, key string, l ratelimit.Limits, tokens int64) stamp {
	t.Helper()
	before := e.Now()
	d := mustAllow(t, e, key, l, tokens)
	return stamp{Decision: d, before: before, after: e.Now()}
}

func mustRefuse(t *testing.T, e Env, key string, l ratelimit.Limits, tokens int64, reason string) ratelimit.Decision {
	t.Helper()
	return refuseUntil(t, Harness{}, e, time.Time{}, key, l, tokens, reason).Decision // no premise to guard
}

// refuseUntil checks the request is refused for reason. until is when the
// refusal's premise ends on the local clock (e.g. an admission leaves the
// window); zero if never. A real clock that stalled past it skips the test.
func refuseUntil(t *testing.T, h Harness, e Env, until time.Time, key string, l ratelimit.Limits, tokens int64, reason string) stamp {
	t.Helper()
	before := e.Now()
	d := admit(t, e, key, l, tokens)
	if d.Allowed {
		if now := e.Now(); !h.FakeClock && !until.IsZero() && !now.Before(until) {
			t.Skipf("the machine stalled: the check needed to run before %v, ran until %v", until, now)
		}
		t.Fatalf("Admit(%q, %d): allowed, want refused for %s", key, tokens, reason)
	}
	if d.Reason != reason {
		t.Fatalf("Admit(%q, %d): reason %q, want %q", key, tokens, d.Reason, reason)
	}
	if d.RetryAfter <= 0 {
		t.Fatalf("Admit(%q, %d): RetryAfter %v, want > 0", key, tokens, d.RetryAfter)
	}
	return stamp{Decision: d, before: before, after: e.Now()}
}

func reconcile(t *testing.T, e Env, key string, l ratelimit.Limits, res string, estimated, actual int64) {
	t.Helper()
	if err := e.Store.Reconcile(t.Context(), key, l, res, estimated, actual); err != nil {
		t.Fatalf("Reconcile(%q, %d → %d): %v", key, estimated, actual, err)
	}
}

func wantRemaining(t *testing.T, d ratelimit.Decision, requests, tokens int64) {
	t.Helper()
	if d.RemainingRequests != requests || d.RemainingTokens != tokens {
		t.Fatalf("remaining requests, tokens: got %d, %d, want %d, %d", d.RemainingRequests, d.RemainingTokens, requests, tokens)
	}
}

// wantRetryAfter checks that refused waits until freed leaves the window:
// exactly on a fake clock, within the call times (±1ms) on a real one.
func wantRetryAfter(t *testing.T, h Harness, refused, freed stamp, window time.Duration) {
	t.Helper()
	lo := freed.before.Add(window).Sub(refused.after)
	hi := freed.after.Add(window).Sub(refused.before)
	if !h.FakeClock {
		lo, hi = lo-time.Millisecond, hi+time.Millisecond
	}
	if got := refused.RetryAfter; got < lo || got > hi {
		t.Fatalf("RetryAfter: got %v, want %v..%v", got, lo, hi)
	}
}

// checkTruthful waits until Margin before RetryAfter and checks the same
// request is still refused, then waits out the rest and checks it passes.
func checkTruthful(t *testing.T, h Harness, e Env, d stamp, key string, l ratelimit.Limits, tokens int64) ratelimit.Decision {
	t.Helper()
	e.Sleep(d.RetryAfter - h.Margin)
	again := refuseUntil(t, h, e, d.before.Add(d.RetryAfter), key, l, tokens, d.Reason)
	if again.RetryAfter > h.Margin {
		t.Fatalf("RetryAfter %v before the deadline: got %v, want at most %v", h.Margin, again.RetryAfter, h.Margin)
	}
	e.Sleep(again.RetryAfter)
	return mustAllow(t, e, key, l, tokens)
}

// skipNearPeriodEnd skips quota tests on a real clock close to UTC midnight.
func skipNearPeriodEnd(t *testing.T, h Harness, e Env) {
	t.Helper()
	now := e.Now().UTC()
	if next := now.Truncate(24 * time.Hour).Add(24 * time.Hour); !h.FakeClock && next.Sub(now) < 30*time.Second {
		t.Skip("too close to UTC midnight for a real clock")
	}
}

func testPing(t *testing.T, h Harness, e Env) {
	if err := e.Store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testUnlimited(t *testing.T, h Harness, e Env) {
	for range 3 {
		d := mustAllow(t, e, "k", ratelimit.Limits{}, 1_000_000)
		wantRemaining(t, d, -1, -1)
		reconcile(t, e, "k", ratelimit.Limits{}, d.Reservation, 1_000_000, 5)
	}
}

func testInvalid(t *testing.T, h Harness, e Env) {
	ctx := t.Context()
	l := ratelimit.Limits{RPM: 1}
	d := mustAllow(t, e, "k", l, 1)
	tests := []struct {
		name string
		call func() error
	}{
		{"empty key", func() error { _, err := e.Store.Admit(ctx, "", l, 1); return err }},
		{"negative tokens", func() error { _, err := e.Store.Admit(ctx, "k", l, -1); return err }},
		{"too many tokens", func() error { _, err := e.Store.Admit(ctx, "k", l, ratelimit.MaxValue+1); return err }},
		{"negative rpm", func() error { _, err := e.Store.Admit(ctx, "k", ratelimit.Limits{RPM: -1}, 1); return err }},
		{"tiny window", func() error {
			_, err := e.Store.Admit(ctx, "k", ratelimit.Limits{RPM: 1, Window: time.Microsecond}, 1)
			return err
		}},
		{"malformed reservation", func() error { return e.Store.Reconcile(ctx, "k", l, "nope", 1, 1) }},
		{"empty reservation", func() error { return e.Store.Reconcile(ctx, "k", l, "", 1, 1) }},
		{"negative actual", func() error { return e.Store.Reconcile(ctx, "k", l, d.Reservation, 1, -1) }},
		{"reconcile empty key", func() error { return e.Store.Reconcile(ctx, "", l, d.Reservation, 1, 1) }},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, ratelimit.ErrInvalid) {
			t.Errorf("%s: got error %v, want ErrInvalid", tc.name, err)
		}
	}
}

func testRPM(t *testing.T, h Harness, e Env) {
	l := ratelimit.Limits{RPM: 5, Window: time.Minute}
	for i := range int64(5) {
		wantRemaining(t, mustAllow(t, e, "k", l, 1), 4-i, -1)
	}
	d := mustRefuse(t, e, "k", l, 1, ratelimit.ReasonRPM)
	wantRemaining(t, d, 0, -1)
	if d.RetryAfter > l.Window {
		t.Fatalf("RetryAfter: got %v, want at most the window %v", d.RetryAfter, l.Window)
	}
	mustAllow(t, e, "other", l, 1) // keys are independent
}

func testRPMRetryAfter(t *testing.T, h Harness, e Env) {
	w := h.Window
	l := ratelimit.Limits{RPM: 2, Window: w}
	a := allowAt(t, e, "k", l, 1)
	e.Sleep(w / 4)
	b := allowAt(t, e, "k", l, 1)
	d := refuseUntil(t, h, e, a.before.Add(w), "k", l, 1, ratelimit.ReasonRPM)
	wantRetryAfter(t, h, d, a, w)
	checkTruthful(t, h, e, d, "k", l, 1)
	// The second admission is still in the window with the new one.
	refuseUntil(t, h, e, b.before.Add(w), "k", l, 1, ratelimit.ReasonRPM)
}

func testTPM(t *testing.T, h Harness, e Env) {
	l := ratelimit.Limits{TPM: 100, Window: time.Minute}
	wantRemaining(t, mustAllow(t, e, "k", l, 60), -1, 40)
	wantRemaining(t, mustRefuse(t, e, "k", l, 50, ratelimit.ReasonTPM), -1, 40)
	wantRemaining(t, mustAllow(t, e, "k", l, 40), -1, 0)
	mustRefuse(t, e, "k", l, 1, ratelimit.ReasonTPM)

	// More than TPM can never pass: RetryAfter is the window.
	d := mustRefuse(t, e, "fresh", l, 101, ratelimit.ReasonTPM)
	if d.RetryAfter != l.Window {
		t.Fatalf("RetryAfter of a request above TPM: got %v, want the window %v", d.RetryAfter, l.Window)
	}
	wantRemaining(t, d, -1, 100)
}

func testTPMRetryAfter(t *testing.T, h Harness, e Env) {
	w := h.Window
	l := ratelimit.Limits{TPM: 100, Window: w}
	a := allowAt(t, e, "k", l, 30)
	e.Sleep(w / 4)
	b := allowAt(t, e, "k", l, 50)
	e.Sleep(w / 4)
	mustAllow(t, e, "k", l, 20)
	// 40 tokens need the first two admissions gone.
	d := refuseUntil(t, h, e, b.before.Add(w), "k", l, 40, ratelimit.ReasonTPM)
	wantRetryAfter(t, h, d, b, w)
	// 25 tokens need only the first gone.
	d = refuseUntil(t, h, e, a.before.Add(w), "k", l, 25, ratelimit.ReasonTPM)
	wantRetryAfter(t, h, d, a, w)
	checkTruthful(t, h, e, d, "k", l, 25)
}

func testSliding(t *testing.T, h Harness, e Env) {
	w := h.Window
	l := ratelimit.Limits{RPM: 3, Window: w}
	a := allowAt(t, e, "k", l, 1)
	e.Sleep(w / 2)
	b := allowAt(t, e, "k", l, 1)
	mustAllow(t, e, "k", l, 1)
	refuseUntil(t, h, e, a.before.Add(w), "k", l, 1, ratelimit.ReasonRPM)
	e.Sleep(w / 2)
	// Only the first admission left the window.
	mustAllow(t, e, "k", l, 1)
	refuseUntil(t, h, e, b.before.Add(w), "k", l, 1, ratelimit.ReasonRPM)
}

func testReconcileWindow(t *testing.T, h Harness, e Env) {
	l := ratelimit.Limits{TPM: 100, Window: time.Minute}
	d1 := mustAllow(t, e, "k", l, 80)
	mustRefuse(t, e, "k", l, 30, ratelimit.ReasonTPM)
	reconcile(t, e, "k", l, d1.Reservation, 80, 10)
	d2 := mustAllow(t, e, "k", l, 30)
	wantRemaining(t, d2, -1, 60)
	// Higher than estimated takes the capacity.
	reconcile(t, e, "k", l, d2.Reservation, 30, 90)
	wantRemaining(t, mustRefuse(t, e, "k", l, 1, ratelimit.ReasonTPM), -1, 0)
	wantRemaining(t, mustAllow(t, e, "k", l, 0), -1, 0)
}

func testReconcileQuota(t *testing.T, h Harness, e Env) {
	skipNearPeriodEnd(t, h, e)
	l := ratelimit.Limits{DailyTokens: 100, MonthlyTokens: 1000}
	d := mustAllow(t, e, "k", l, 80)
	wantRemaining(t, d, -1, 20)
	if d.TokenLimit != 100 {
		t.Fatalf("TokenLimit %d, want 100: the daily quota leaves the least", d.TokenLimit)
	}
	mustRefuse(t, e, "k", l, 30, ratelimit.ReasonDailyQuota)
	reconcile(t, e, "k", l, d.Reservation, 80, 50)
	wantRemaining(t, mustAllow(t, e, "k", l, 30), -1, 20)
	mustRefuse(t, e, "k", l, 21, ratelimit.ReasonDailyQuota)
	// The monthly quota was reconciled too: 920 left, the daily cap binds.
	l.DailyTokens = 0
	d = mustAllow(t, e, "k", l, 0)
	wantRemaining(t, d, -1, 920)
	if d.TokenLimit != 1000 {
		t.Fatalf("TokenLimit %d, want 1000: the monthly quota is what is left of", d.TokenLimit)
	}
}

// periodEnds returns the next UTC midnight and first of a month after t.
func periodEnds(t time.Time) (day, month time.Time) {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC), time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
}

func testDailyQuota(t *testing.T, h Harness, e Env) {
	testQuota(t, h, e, ratelimit.Limits{DailyTokens: 100}, ratelimit.ReasonDailyQuota,
		func(t time.Time) time.Time { d, _ := periodEnds(t); return d })
}

func testMonthlyQuota(t *testing.T, h Harness, e Env) {
	testQuota(t, h, e, ratelimit.Limits{MonthlyTokens: 100}, ratelimit.ReasonMonthlyQuota,
		func(t time.Time) time.Time { _, m := periodEnds(t); return m })
}

func testQuota(t *testing.T, h Harness, e Env, l ratelimit.Limits, reason string, end func(time.Time) time.Time) {
	skipNearPeriodEnd(t, h, e)
	wantRemaining(t, mustAllow(t, e, "k", l, 60), -1, 40)
	wantRemaining(t, mustAllow(t, e, "k", l, 40), -1, 0)
	before := e.Now()
	d := mustRefuse(t, e, "k", l, 1, reason)
	after := e.Now()
	wantRemaining(t, d, -1, 0)
	if lo, hi := end(after).Sub(after), end(before).Sub(before); d.RetryAfter < lo-time.Millisecond || d.RetryAfter > hi+time.Millisecond {
		t.Fatalf("RetryAfter: got %v, want the end of the period, %v..%v", d.RetryAfter, lo, hi)
	}
	mustRefuse(t, e, "fresh", l, 101, reason) // above the quota: never
	if !h.FakeClock {
		return
	}
	e.Sleep(d.RetryAfter - time.Nanosecond)
	mustRefuse(t, e, "k", l, 1, reason)
	e.Sleep(time.Nanosecond)
	wantRemaining(t, mustAllow(t, e, "k", l, 1), -1, 99)
}

func testLongestWait(t *testing.T, h Harness, e Env) {
	skipNearPeriodEnd(t, h, e)
	l := ratelimit.Limits{RPM: 1, Window: time.Minute, DailyTokens: 10}
	mustAllow(t, e, "k", l, 10)
	d := refuseUntil(t, h, e, time.Time{}, "k", l, 1, ratelimit.ReasonDailyQuota)
	wantRemaining(t, d.Decision, 0, 0)
	day, _ := periodEnds(d.before)
	if lo, hi := day.Sub(d.after), day.Sub(d.before); d.RetryAfter < lo-time.Millisecond || d.RetryAfter > hi+time.Millisecond {
		t.Fatalf("RetryAfter: got %v, want until midnight, %v..%v", d.RetryAfter, lo, hi)
	}
}

func testConcurrent(t *testing.T, h Harness, e Env) {
	const limit, workers, each = 50, 16, 10
	l := ratelimit.Limits{RPM: limit, Window: time.Minute}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				d, err := e.Store.Admit(t.Context(), "k", l, 1)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Admit: %v", err)
	}
	if got := admitted.Load(); got != limit {
		t.Fatalf("admitted: got %d, want %d", got, limit)
	}
}

// testUsage checks that a query counts exactly the buckets overlapping its
// range: per minute within the last day, per hour before.
func testUsage(t *testing.T, h Harness, e Env) {
	ctx := t.Context()
	now := e.Now().UTC()
	base := now.Truncate(time.Hour).Add(-3 * time.Hour) // kept per minute
	old := now.Truncate(time.Hour).Add(-72 * time.Hour) // kept per hour
	record := func(at time.Time, u ratelimit.Usage) {
		t.Helper()
		if err := e.Store.Record(ctx, at, u); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	record(base.Add(10*time.Minute), ratelimit.Usage{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 10, Completion: 5, Requests: 1})
	record(base.Add(50*time.Minute), ratelimit.Usage{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 1, Completion: 2, Requests: 1})
	record(base.Add(65*time.Minute+30*time.Second), ratelimit.Usage{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 100, Completion: 200, Requests: 1})
	record(base.Add(65*time.Minute), ratelimit.Usage{Key: "k1", Model: "gpt", Backend: "b2", Prompt: 7, Completion: 0, Requests: 1})
	record(base.Add(time.Hour), ratelimit.Usage{Key: "k2", Model: "emb", Backend: "b1", Prompt: 3, Requests: 2})
	record(base.Add(2*time.Hour), ratelimit.Usage{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 1000, Completion: 1000, Requests: 10})
	record(base.Add(2*time.Hour), ratelimit.Usage{Key: "zero", Model: "gpt", Backend: "b1"})
	record(old.Add(10*time.Minute), ratelimit.Usage{Key: "k3", Model: "gpt", Backend: "b1", Prompt: 1, Completion: 1, Requests: 1})
	record(old.Add(50*time.Minute), ratelimit.Usage{Key: "k3", Model: "gpt", Backend: "b1", Prompt: 2, Completion: 2, Requests: 1})
	// Expired: neither kept nor counted.
	record(now.Add(-ratelimit.UsageRetention-time.Hour), ratelimit.Usage{Key: "gone", Model: "gpt", Backend: "b1", Requests: 1})

	k3 := ratelimit.Usage{Key: "k3", Model: "gpt", Backend: "b1", Prompt: 3, Completion: 3, Requests: 2}
	tests := []struct {
		name     string
		from, to time.Time
		want     []ratelimit.Usage
	}{
		{"minutes", base.Add(30 * time.Minute), base.Add(2 * time.Hour), []ratelimit.Usage{
			{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 101, Completion: 202, Requests: 2},
			{Key: "k1", Model: "gpt", Backend: "b2", Prompt: 7, Requests: 1},
			{Key: "k2", Model: "emb", Backend: "b1", Prompt: 3, Requests: 2},
		}},
		{"partial minutes", base.Add(59*time.Minute + 30*time.Second), base.Add(60*time.Minute + 30*time.Second), []ratelimit.Usage{
			{Key: "k2", Model: "emb", Backend: "b1", Prompt: 3, Requests: 2},
		}},
		{"one minute", base.Add(65 * time.Minute), base.Add(66 * time.Minute), []ratelimit.Usage{
			{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 100, Completion: 200, Requests: 1},
			{Key: "k1", Model: "gpt", Backend: "b2", Prompt: 7, Requests: 1},
		}},
		{"between minutes", base.Add(11 * time.Minute), base.Add(50 * time.Minute), nil},
		{"last hour", base.Add(2 * time.Hour), base.Add(3 * time.Hour), []ratelimit.Usage{
			{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 1000, Completion: 1000, Requests: 10},
		}},
		{"after everything", base.Add(2*time.Hour + time.Minute), now, nil},
		{"old, within an hour", old.Add(20 * time.Minute), old.Add(30 * time.Minute), []ratelimit.Usage{k3}},
		{"old to recent", old.Add(20 * time.Minute), base.Add(11 * time.Minute), []ratelimit.Usage{
			{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 10, Completion: 5, Requests: 1}, k3,
		}},
		{"all time", time.Time{}, base.Add(100 * 24 * time.Hour), []ratelimit.Usage{
			{Key: "k1", Model: "gpt", Backend: "b1", Prompt: 1111, Completion: 1207, Requests: 13},
			{Key: "k1", Model: "gpt", Backend: "b2", Prompt: 7, Requests: 1},
			{Key: "k2", Model: "emb", Backend: "b1", Prompt: 3, Requests: 2},
			k3,
		}},
		{"empty range", base.Add(time.Hour), base.Add(time.Hour), nil},
		{"reversed range", base.Add(2 * time.Hour), base, nil},
		{"hour before", old.Add(-time.Hour), old, nil},
	}
	for _, tc := range tests {
		got, err := e.Store.Query(ctx, tc.from, tc.to)
		if err != nil {
			t.Fatalf("%s: Query: %v", tc.name, err)
		}
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Query:\ngot  %s\nwant %s", tc.name, fmt.Sprint(got), fmt.Sprint(tc.want))
		}
	}
}

func testThrottles(t *testing.T, h Harness, e Env) {
	testUntils(t, h, e, "Throttles", e.Store.SetThrottle, e.Store.Throttles, e.Store.OpenCircuits)
}

func testOpenCircuits(t *testing.T, h Harness, e Env) {
	testUntils(t, h, e, "OpenCircuits", e.Store.SetCircuitOpen, e.Store.OpenCircuits, e.Store.Throttles)
}

// testUntils checks one kind of shared backend time (cool-downs, open
// circuits): the later time is kept, past ones are dropped, and the other
// kind (other) is not touched.
func testUntils(t *testing.T, h Harness, e Env, name string,
	setUntil func(context.Context, string, time.Time) error,
	list, other func(context.Context) (map[string]time.Time, error)) {
	ctx := t.Context()
	set := func(backend string, until time.Time) {
		t.Helper()
		if err := setUntil(ctx, backend, until); err != nil {
			t.Fatalf("%s: set: %v", name, err)
		}
	}
	// check compares with want the throttles still in the future; on a real
	// clock, one ending during the call may or may not be there.
	check := func(want map[string]time.Time) {
		t.Helper()
		before := e.Now()
		got, err := list(ctx)
		after := e.Now()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for b, w := range want {
			g, ok := got[b]
			switch {
			case !w.After(before) && ok:
				t.Fatalf("%s[%q]: got %v, want it expired at %v (now %v)", name, b, g, w, before)
			case w.After(after) && !ok:
				t.Fatalf("%s[%q]: missing, want %v (now %v)", name, b, w, after)
			case ok && g.Sub(w).Abs() > time.Millisecond:
				t.Fatalf("%s[%q]: got %v, want %v", name, b, g, w)
			}
		}
		for b, g := range got {
			if _, ok := want[b]; !ok {
				t.Fatalf("%s: got unexpected %q until %v", name, b, g)
			}
		}
	}
	u := h.Window / 2
	now := e.Now()
	all := map[string]time.Time{"b1": now.Add(2 * u), "b2": now.Add(u / 2)}
	set("b1", all["b1"])
	set("b1", now.Add(u)) // earlier: ignored
	set("b2", all["b2"])
	set("b3", now.Add(-time.Second)) // past: ignored
	check(all)
	if o, err := other(ctx); err != nil || len(o) != 0 {
		t.Fatalf("%s: the other kind holds %v (%v), want nothing", name, o, err)
	}
	all["b2"] = now.Add(u)
	set("b2", all["b2"]) // later: kept
	check(all)
	e.Sleep(u + time.Millisecond)
	check(all) // b2 expired
	e.Sleep(u)
	check(all) // all expired
}

// BenchmarkAdmit measures Admit over 1024 keys with limits that admit everything.
func BenchmarkAdmit(b *testing.B, s ratelimit.Store) {
	keys := benchKeys()
	l := benchLimits()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d, err := s.Admit(ctx, keys[i%len(keys)], l, 10)
		if err != nil || !d.Allowed {
			b.Fatalf("Admit: %+v, %v", d, err)
		}
		i++
	}
}

// BenchmarkAdmitParallel is BenchmarkAdmit from GOMAXPROCS goroutines.
func BenchmarkAdmitParallel(b *testing.B, s ratelimit.Store) {
	keys := benchKeys()
	l := benchLimits()
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 97
		for pb.Next() {
			d, err := s.Admit(ctx, keys[i%len(keys)], l, 10)
			if err != nil || !d.Allowed {
				b.Errorf("Admit: %+v, %v", d, err)
				return
			}
			i++
		}
	})
}

func benchKeys() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-key-%d", i)
	}
	return keys
}

func benchLimits() ratelimit.Limits {
	return ratelimit.Limits{RPM: 1 << 40, TPM: 1 << 45, Window: 100 * time.Millisecond, DailyTokens: 1 << 48}
}
