package ratelimit_test

import (
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/ratelimit/ratelimittest"
)

// fakeClock is a manual clock. Safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// start is noon of the last day of a leap February: the day and month end together.
var start = time.Date(2024, time.February, 29, 12, 0, 0, 0, time.UTC)

func newMemory(t *testing.T) (*ratelimit.Memory, *fakeClock) {
	clock := &fakeClock{now: start}
	m := ratelimit.NewMemory(clock.Now)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m, clock
}

func TestMemory(t *testing.T) {
	ratelimittest.TestStore(t, ratelimittest.Harness{
		New: func(t *testing.T) ratelimittest.Env {
			m, clock := newMemory(t)
			return ratelimittest.Env{Store: m, Now: clock.Now, Sleep: clock.Advance}
		},
		Window:    time.Minute,
		Margin:    time.Nanosecond,
		FakeClock: true,
	})
}

func TestMemoryRealClock(t *testing.T) {
	m := ratelimit.NewMemory(nil)
	l := ratelimit.Limits{RPM: 1}
	d, err := m.Admit(t.Context(), "k", l, 1)
	if err != nil || !d.Allowed {
		t.Fatalf("Admit: got %+v, %v, want allowed", d, err)
	}
}

func TestMemoryQuotaReconcileAcrossMidnight(t *testing.T) {
	m, clock := newMemory(t)
	ctx := t.Context()
	l := ratelimit.Limits{DailyTokens: 100}
	clock.Advance(12*time.Hour - time.Second) // 23:59:59
	d, err := m.Admit(ctx, "k", l, 90)
	if err != nil || !d.Allowed {
		t.Fatalf("Admit: got %+v, %v, want allowed", d, err)
	}
	clock.Advance(2 * time.Second)
	d2, err := m.Admit(ctx, "k", l, 50)
	if err != nil || !d2.Allowed || d2.RemainingTokens != 50 {
		t.Fatalf("Admit on the new day: got %+v, %v, want allowed with 50 left", d2, err)
	}
	// Yesterday's reservation must not change today's count.
	if err := m.Reconcile(ctx, "k", l, d.Reservation, 90, 10); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	d3, err := m.Admit(ctx, "k", l, 50)
	if err != nil || !d3.Allowed || d3.RemainingTokens != 0 {
		t.Fatalf("Admit after Reconcile: got %+v, %v, want allowed with 0 left", d3, err)
	}
}

func BenchmarkAdmit(b *testing.B) {
	ratelimittest.BenchmarkAdmit(b, ratelimit.NewMemory(nil))
}

func BenchmarkAdmitParallel(b *testing.B) {
	ratelimittest.BenchmarkAdmitParallel(b, ratelimit.NewMemory(nil))
}
