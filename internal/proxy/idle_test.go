package proxy

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestGuardIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cancelled atomic.Bool
		g := newGuard(100*time.Millisecond, time.Time{}, func() { cancelled.Store(true) })
		defer g.stop()
		time.Sleep(time.Second) // before reading starts, only the deadline counts (none)
		if g.fired() || cancelled.Load() {
			t.Fatal("fired before the response began")
		}
		g.startReading()
		for range 20 { // reads every 60 ms keep it quiet
			time.Sleep(60 * time.Millisecond)
			g.touch()
		}
		synctest.Wait()
		if g.fired() {
			t.Fatal("fired while reads kept coming")
		}
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if g.fired() {
			t.Fatal("fired before the idle timeout")
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if !g.fired() || !cancelled.Load() {
			t.Fatal("did not fire after 100 ms without a read")
		}
	})
}

func TestGuardDeadlineBeatsIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at time.Duration
		g := newGuard(time.Hour, start.Add(250*time.Millisecond), func() { at = time.Since(start) })
		defer g.stop()
		g.startReading()
		for range 10 {
			time.Sleep(50 * time.Millisecond)
			g.touch()
		}
		synctest.Wait()
		if !g.fired() || at != 250*time.Millisecond {
			t.Fatalf("fired %v at %v, want at the deadline (250ms)", g.fired(), at)
		}
	})
}

func TestGuardIdleBeforeDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at time.Duration
		g := newGuard(100*time.Millisecond, start.Add(time.Hour), func() { at = time.Since(start) })
		defer g.stop()
		time.Sleep(30 * time.Millisecond)
		g.startReading()
		time.Sleep(time.Second)
		synctest.Wait()
		if !g.fired() || at != 130*time.Millisecond {
			t.Fatalf("fired %v at %v, want 100 ms after reading began (130ms)", g.fired(), at)
		}
	})
}
