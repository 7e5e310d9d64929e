package redis

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/ratelimit/ratelimittest"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

// testTimeout is generous: parallel tests under -race share one CPU budget.
const testTimeout = 2 * time.Second

func newStore(t testing.TB, url, prefix string) *Store {
	t.Helper()
	s, err := New(context.Background(), Options{URL: url, Prefix: prefix, Timeout: testTimeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawClient is a plain client to inspect keys.
func rawClient(t *testing.T, srv *redistest.Server) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestStore(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	ratelimittest.TestStore(t, ratelimittest.Harness{
		New: func(t *testing.T) ratelimittest.Env {
			s := newStore(t, srv.URL(), fmt.Sprintf("conformance%d:", n.Add(1)))
			return ratelimittest.Env{Store: s, Now: time.Now, Sleep: time.Sleep}
		},
		Window: 2 * time.Second, // server time: the suite really waits
		Margin: 250 * time.Millisecond,
	})
}

func TestTwoClientsShareRPM(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	stores := []*Store{newStore(t, srv.URL(), "shared:"), newStore(t, srv.URL(), "shared:")}
	const limit, workers, each = 100, 8, 25
	l := ratelimit.Limits{RPM: limit, TPM: 10 * limit, Window: time.Minute}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*workers)
	for _, s := range stores {
		for range workers {
			wg.Go(func() {
				for range each {
					d, err := s.Admit(t.Context(), "client", l, 3)
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
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Admit: %v", err)
	}
	if got := admitted.Load(); got != limit {
		t.Fatalf("admitted by both clients: got %d, want %d", got, limit)
	}
	for i, s := range stores {
		d, err := s.Admit(t.Context(), "client", l, 3)
		if err != nil || d.Allowed || d.Reason != ratelimit.ReasonRPM {
			t.Fatalf("client %d after the limit: got %+v, %v, want refused for rpm", i, d, err)
		}
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), "")
	ctx := t.Context()
	l := ratelimit.Limits{RPM: 10, Window: time.Minute}
	for range 3 {
		if d, err := s.Admit(ctx, "k", l, 1); err != nil || !d.Allowed {
			t.Fatalf("Admit: got %+v, %v, want allowed", d, err)
		}
	}
	if err := s.SetThrottle(ctx, "b", time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("SetThrottle: %v", err)
	}

	// The new server has no data, no scripts and none of the pooled connections.
	srv.Restart()
	d, err := s.Admit(ctx, "k", l, 1)
	if err != nil || !d.Allowed || d.RemainingRequests != 9 {
		t.Fatalf("Admit after restart: got %+v, %v, want allowed with 9 left", d, err)
	}
	if err := s.Reconcile(ctx, "k", l, d.Reservation, 1, 2); err != nil {
		t.Fatalf("Reconcile after restart: %v", err)
	}
	if err := s.SetThrottle(ctx, "b", time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("SetThrottle after restart: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s, err := New(t.Context(), Options{URL: srv.URL(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	srv.Stop()

	ctx := t.Context()
	l := ratelimit.Limits{RPM: 1}
	res := "1700000000000000-0123456789abcdef"
	calls := []struct {
		name, prefix string
		call         func() error
	}{
		{"Admit", "redis admit: ", func() error { _, err := s.Admit(ctx, "k", l, 1); return err }},
		{"Reconcile", "redis reconcile: ", func() error { return s.Reconcile(ctx, "k", l, res, 1, 2) }},
		{"Record", "redis record: ", func() error { return s.Record(ctx, time.Now(), ratelimit.Usage{Key: "k", Requests: 1}) }},
		{"Query", "redis query: ", func() error { _, err := s.Query(ctx, time.Now().Add(-time.Hour), time.Now()); return err }},
		{"SetThrottle", "redis set throttle: ", func() error { return s.SetThrottle(ctx, "b", time.Now().Add(time.Minute)) }},
		{"Throttles", "redis throttles: ", func() error { _, err := s.Throttles(ctx); return err }},
		{"Ping", "redis ping: ", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if err == nil || !strings.HasPrefix(err.Error(), c.prefix) {
			t.Errorf("%s with Redis down: got error %v, want one starting %q", c.name, err, c.prefix)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s with Redis down took %v, want about the 300ms timeout", c.name, elapsed)
		}
	}

	if _, err := New(t.Context(), Options{URL: srv.URL(), Timeout: 100 * time.Millisecond}); err == nil {
		t.Fatalf("New with Redis down: got no error")
	}
}

// TestNoLeak is not parallel: it counts goroutines.
func TestNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := redistest.Start(t)
	s, err := New(t.Context(), Options{URL: srv.URL(), Timeout: testTimeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := t.Context()
	l := ratelimit.Limits{RPM: 5, DailyTokens: 100}
	d, err := s.Admit(ctx, "k", l, 10)
	if err == nil {
		err = s.Reconcile(ctx, "k", l, d.Reservation, 10, 5)
	}
	if err == nil {
		err = s.Record(ctx, time.Now(), ratelimit.Usage{Key: "k", Requests: 1})
	}
	if err == nil {
		_, err = s.Query(ctx, time.Now().Add(-time.Hour), time.Now())
	}
	if err == nil {
		err = s.SetThrottle(ctx, "b", time.Now().Add(time.Minute))
	}
	if err == nil {
		_, err = s.Throttles(ctx)
	}
	if err != nil {
		t.Fatalf("using the store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	srv.Stop()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: got %d, want at most %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{URL: "redis://127.0.0.1:1", Prefix: "a{b}:"},
		{URL: "redis://127.0.0.1:1", Timeout: -time.Second},
		{URL: "http://127.0.0.1:1"},
		{URL: ""},
	} {
		if s, err := New(t.Context(), o); err == nil {
			s.Close()
			t.Errorf("New(%+v): got no error", o)
		}
	}
}

func TestKeysExpire(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), "")
	raw := rawClient(t, srv)
	ctx := t.Context()

	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := raw.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", key, err)
		}
		return d
	}
	within := func(key string, lo, hi time.Duration) {
		t.Helper()
		if d := ttl(key); d < lo || d > hi {
			t.Errorf("TTL of %s: got %v, want %v..%v", key, d, lo, hi)
		}
	}

	if _, err := s.Admit(ctx, "w", ratelimit.Limits{RPM: 5, Window: 2 * time.Second}, 1); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	// The store rounds a window up to the next millisecond.
	within("llmgate:rl:{w}:log", time.Millisecond, 2*time.Second+10*time.Millisecond)
	within("llmgate:rl:{w}:st", time.Millisecond, 2*time.Second+10*time.Millisecond)

	now := time.Now().UTC()
	if _, err := s.Admit(ctx, "q", ratelimit.Limits{RPM: 5, DailyTokens: 100}, 1); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	midnight := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
	within("llmgate:rl:{q}:log", time.Millisecond, time.Minute)
	within("llmgate:rl:{q}:st", midnight.Sub(now)-5*time.Second, midnight.Sub(now)+5*time.Second)

	hour := now.Truncate(time.Hour)
	if err := s.Record(ctx, now, ratelimit.Usage{Key: "k", Requests: 1}); err != nil {
		t.Fatalf("Record: %v", err)
	}
	want := hour.Add(ratelimit.UsageRetention).Sub(now)
	within("llmgate:usage:{"+hour.Format("2006010215")+"}", want-5*time.Second, want+5*time.Second)
	minute := now.Truncate(time.Minute)
	want = minute.Add(ratelimit.MinuteRetention).Sub(now)
	within("llmgate:usage:{"+hour.Format("2006010215")+"}:"+minute.Format("04"), want-5*time.Second, want+5*time.Second)

	if err := s.SetThrottle(ctx, "b", now.Add(3*time.Second)); err != nil {
		t.Fatalf("SetThrottle: %v", err)
	}
	within("llmgate:throttles", time.Millisecond, 3*time.Second+time.Millisecond)
}

func TestHashTag(t *testing.T) {
	t.Parallel()
	s := &Store{prefix: DefaultPrefix}
	seen := map[string]string{}
	for _, key := range []string{"plain", "a}b", "}", "{", "{}", "%7D", "%", "key:with:colons"} {
		keys := s.limitKeys(key)
		tag := func(k string) string {
			open := strings.IndexByte(k, '{')
			end := strings.IndexByte(k[open+1:], '}')
			return k[open+1 : open+1+end]
		}
		t0, t1 := tag(keys[0]), tag(keys[1])
		if t0 == "" || t0 != t1 {
			t.Errorf("%q: tags %q and %q, want equal and non-empty", key, t0, t1)
		}
		if other, dup := seen[t0]; dup {
			t.Errorf("%q and %q share the tag %q", key, other, t0)
		}
		seen[t0] = key
	}
}
