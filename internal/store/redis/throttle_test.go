package redis

import (
	"context"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

// Every cool-down and circuit opening a store keeps reaches the replicas
// that watch, at once and once; one it does not keep (an earlier time) is
// not sent; and the watch comes back by itself after Redis restarts.
func TestWatchSeesOtherReplicasNotes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newStore(t, srv.URL(), ""), newStore(t, srv.URL(), "")
	other := newStore(t, srv.URL(), "other:") // another gateway's prefix: not heard
	notes := make(chan ratelimit.BackendNote, 16)
	if err := b.Watch(t.Context(), func(n ratelimit.BackendNote) { notes <- n }); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	next := func(want ratelimit.BackendNote) {
		t.Helper()
		select {
		case n := <-notes:
			if n.Backend != want.Backend || n.CircuitOpen != want.CircuitOpen || n.Until.Sub(want.Until).Abs() > time.Millisecond {
				t.Fatalf("got %+v, want %+v", n, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no note; want %+v", want)
		}
	}
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(other.SetThrottle(ctx, "x", now.Add(time.Minute)))
	must(a.SetThrottle(ctx, "se", now.Add(30*time.Second)))
	next(ratelimit.BackendNote{Backend: "se", Until: now.Add(30 * time.Second)})
	must(a.SetThrottle(ctx, "se", now.Add(10*time.Second))) // earlier: kept out, not sent
	must(a.SetCircuitOpen(ctx, "fr west", now.Add(20*time.Second)))
	next(ratelimit.BackendNote{Backend: "fr west", Until: now.Add(20 * time.Second), CircuitOpen: true})
	select {
	case n := <-notes:
		t.Fatalf("unexpected note %+v", n)
	case <-time.After(100 * time.Millisecond):
	}

	srv.Restart()
	if n := noteOnceUp(t, notes, a.SetThrottle); n.Backend != "se" || n.CircuitOpen {
		t.Fatalf("after the restart: got %+v", n)
	}
}

// noteOnceUp records ever later times for backend "se" with set until a
// note comes (Redis is coming back: a set may fail, or land before the
// watch has subscribed again), and returns that note.
func noteOnceUp(t *testing.T, notes <-chan ratelimit.BackendNote, set func(context.Context, string, time.Time) error) ratelimit.BackendNote {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 1; time.Now().Before(deadline); i++ {
		if err := set(t.Context(), "se", time.Now().Add(time.Duration(i)*time.Minute)); err == nil {
			select {
			case n := <-notes:
				return n
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	t.Fatal("no note within 10 s of Redis coming back")
	return ratelimit.BackendNote{}
}

// Watch returns the first try's error while Redis is down and keeps
// trying; notes reach it once Redis is up.
func TestWatchStartsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	url := srv.URL()
	srv.Stop()
	s, err := New(context.Background(), Options{URL: url, Timeout: 200 * time.Millisecond, Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	notes := make(chan ratelimit.BackendNote, 16)
	if err := s.Watch(t.Context(), func(n ratelimit.BackendNote) { notes <- n }); err == nil {
		t.Fatal("Watch with Redis down: no error")
	}
	srv.Restart() // starts it again
	if n := noteOnceUp(t, notes, s.SetCircuitOpen); n.Backend != "se" || !n.CircuitOpen {
		t.Fatalf("got %+v", n)
	}
}

func TestParseNote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want ratelimit.BackendNote
		ok   bool
	}{
		{"throttle 1700000000000 se", ratelimit.BackendNote{Backend: "se", Until: time.UnixMilli(1700000000000)}, true},
		{"circuit 1700000000000 fr west", ratelimit.BackendNote{Backend: "fr west", Until: time.UnixMilli(1700000000000), CircuitOpen: true}, true},
		{"throttle 1700000000000 ", ratelimit.BackendNote{}, false},
		{"throttle x se", ratelimit.BackendNote{}, false},
		{"reset 1 se", ratelimit.BackendNote{}, false},
		{"throttle", ratelimit.BackendNote{}, false},
		{"", ratelimit.BackendNote{}, false},
	} {
		got, ok := parseNote(tc.in)
		if ok != tc.ok || got.Backend != tc.want.Backend || got.CircuitOpen != tc.want.CircuitOpen || !got.Until.Equal(tc.want.Until) {
			t.Errorf("parseNote(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
