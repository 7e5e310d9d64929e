package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/metrics"
	"github.com/llmgate/llmgate/internal/ratelimit"
	redisstore "github.com/llmgate/llmgate/internal/store/redis"
	"github.com/llmgate/llmgate/internal/upstream"
)

const (
	// syncEvery is how often the store's health is checked and the backend
	// cool-downs and open circuits of the other replicas are read (they also
	// come at once over the store's channel; this catches what a
	// disconnection lost).
	syncEvery = time.Second
	// usageFlushEvery is how often usage is written to the store: the longest a
	// request's usage takes to show on another replica's /admin/usage.
	usageFlushEvery = 250 * time.Millisecond
	// usageFlushTimeout bounds one usage flush.
	usageFlushTimeout = 2 * time.Second
)

// shared owns the gateway's link to its state store: the usage batcher, the
// exchange of backend cool-downs and open circuits between replicas, and
// the store's health.
// Its loop runs from Serve and stops with it.
type shared struct {
	store    ratelimit.Store
	kind     string
	failOpen bool // store.on_failure: open
	usage    *ratelimit.Batcher
	registry *upstream.Registry
	log      *slog.Logger
	timeout  time.Duration

	out chan ratelimit.BackendNote // cool-downs and circuit openings to publish
	// transition reports a circuit another replica opened here (logs it,
	// counts it). Set before run.
	transition func(upstream.Transition)
	// down is when the store was found unreachable (Unix ns); 0 while it
	// answers. Set by any failed call, cleared by the next good ping.
	down    atomic.Int64
	closeMu sync.Once
}

// Check returns what is wrong with cfg that only the parts it configures
// can tell, beyond config.Validate: a store.url the Redis store would
// refuse. `llmgate validate` reports them with the config's own problems,
// so it refuses what serve would; the error never repeats the URL, which may
// hold a password.
func Check(cfg *config.Config) []config.Problem {
	if cfg.Store.Type != "redis" || cfg.Store.URL == "" {
		return nil
	}
	if err := redisstore.CheckURL(cfg.Store.URL.Reveal()); err != nil {
		return []config.Problem{{Path: "store.url", Message: err.Error()}}
	}
	return nil
}

// newShared opens the configured store. A Redis store starts even while
// Redis is unreachable; it connects when it can.
func newShared(cfg config.Store, reg *upstream.Registry, log *slog.Logger) (*shared, error) {
	s := &shared{kind: cfg.Type, failOpen: cfg.OnFailure != "closed", registry: reg, log: log, timeout: cfg.Timeout.D(),
		out: make(chan ratelimit.BackendNote, 1024)}
	switch cfg.Type {
	case "redis":
		st, err := redisstore.New(context.Background(), redisstore.Options{URL: cfg.URL.Reveal(), Timeout: cfg.Timeout.D(), Lazy: true, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s.store = st
	default:
		s.store = ratelimit.NewMemory(nil)
	}
	s.usage = ratelimit.NewBatcher(s.store)
	return s, nil
}

// onThrottle queues a backend's cool-down for the other replicas; it never blocks.
func (s *shared) onThrottle(backend string, until time.Time) {
	s.publish(ratelimit.BackendNote{Backend: backend, Until: until})
}

// onCircuitOpen queues the opening of a backend's circuit for the other
// replicas; it never blocks.
func (s *shared) onCircuitOpen(backend string, until time.Time) {
	s.publish(ratelimit.BackendNote{Backend: backend, Until: until, CircuitOpen: true})
}

func (s *shared) publish(n ratelimit.BackendNote) {
	if s.kind != "redis" {
		return
	}
	select {
	case s.out <- n:
	default: // full: the next 429 or failure will tell them
	}
}

// apply brings another replica's note to this one's backend state.
func (s *shared) apply(n ratelimit.BackendNote) {
	st := s.registry.Lookup(n.Backend)
	if st == nil {
		return
	}
	if !n.CircuitOpen {
		st.Throttle(n.Until)
		return
	}
	if tr, changed := st.OpenCircuit(time.Now(), n.Until); changed && s.transition != nil {
		s.transition(tr)
	}
}

// run exchanges state with the store until ctx ends. It checks the store
// at once, so an outage at startup shows within one store timeout.
func (s *shared) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		s.usage.Run(ctx, usageFlushEvery, usageFlushTimeout, func(err error) { s.failed("usage flush", err) })
	})
	if w, ok := s.store.(ratelimit.BackendWatcher); ok && s.kind == "redis" {
		if err := w.Watch(ctx, s.apply); err != nil {
			s.failed("subscribe", err)
		}
	}
	s.poll(ctx)
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case n := <-s.out:
			c, cancel := context.WithTimeout(ctx, s.timeout)
			if n.CircuitOpen {
				if err := s.store.SetCircuitOpen(c, n.Backend, n.Until); err != nil {
					s.failed("publish circuit", err)
				}
			} else if err := s.store.SetThrottle(c, n.Backend, n.Until); err != nil {
				s.failed("publish throttle", err)
			}
			cancel()
		case <-t.C:
			s.poll(ctx)
		}
	}
}

// poll checks the store's health and applies other replicas' cool-downs
// and open circuits.
func (s *shared) poll(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.store.Ping(c); err != nil {
		s.failed("ping", err)
		return
	}
	if s.kind == "redis" {
		ts, err := s.store.Throttles(c)
		if err != nil {
			s.failed("read throttles", err)
			return
		}
		cs, err := s.store.OpenCircuits(c)
		if err != nil {
			s.failed("read circuits", err)
			return
		}
		for name, until := range ts {
			s.apply(ratelimit.BackendNote{Backend: name, Until: until})
		}
		for name, until := range cs {
			s.apply(ratelimit.BackendNote{Backend: name, Until: until, CircuitOpen: true})
		}
	}
	if since := s.down.Swap(0); since != 0 {
		s.log.Info("state store reachable again", slog.String("store", s.kind),
			slog.Duration("unreachable_for", time.Since(time.Unix(0, since)).Round(time.Millisecond)))
	}
}

// failed records that a call to the store failed; the first failure of an
// outage is logged, with the policy that applies until it ends.
func (s *shared) failed(what string, err error) {
	if s.down.CompareAndSwap(0, time.Now().UnixNano()) {
		s.log.Error("state store unreachable", slog.String("store", s.kind), slog.String("op", what), slog.Any("err", err),
			slog.String("on_failure", s.policy()), slog.String("effect", s.effect()))
	}
}

func (s *shared) close() {
	s.closeMu.Do(func() { _ = s.store.Close() })
}

// policy is store.on_failure.
func (s *shared) policy() string {
	if s.failOpen {
		return "open"
	}
	return "closed"
}

// effect says what the policy does while the store is unreachable.
func (s *shared) effect() string {
	if s.failOpen {
		return "serving; key limits and quotas enforced by each instance alone"
	}
	return "refusing requests of keys with limits or quotas (503)"
}

// unreachable reports whether the store is unreachable, and since when.
func (s *shared) unreachable() (time.Time, bool) {
	since := s.down.Load()
	if since == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, since), true
}

// metricsState is the store's health for llmgate_store_up.
func (s *shared) metricsState() metrics.StoreState {
	_, down := s.unreachable()
	return metrics.StoreState{Type: s.kind, Up: !down, FailOpen: s.failOpen}
}

// health answers /healthz (ready false) or /readyz (ready true) as far as
// the store is concerned: the status and the plain-text body. While the
// store answers they are 200 "ok" and 200 "ready". While it does not,
// /healthz stays 200 (the process is fine) and both bodies say so and name
// the policy in force; /readyz is 503 under on_failure: closed (limited
// requests would be refused) and 200 "degraded" under open.
func (s *shared) health(ready bool) (int, string) {
	since, down := s.unreachable()
	switch {
	case !down && ready:
		return http.StatusOK, "ready\n"
	case !down:
		return http.StatusOK, "ok\n"
	}
	detail := fmt.Sprintf("state store %s unreachable since %s; on_failure: %s: %s\n",
		s.kind, since.UTC().Format(time.RFC3339), s.policy(), s.effect())
	switch {
	case !ready:
		return http.StatusOK, "ok, degraded: " + detail
	case s.failOpen:
		return http.StatusOK, "degraded: " + detail
	default:
		return http.StatusServiceUnavailable, "not ready: " + detail
	}
}

// usageRow is one line of GET /admin/usage.
type usageRow struct {
	Key              string `json:"key"`
	Model            string `json:"model"`
	Backend          string `json:"backend"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
}

// usageBuckets is one run of buckets an /admin/usage answer counted.
type usageBuckets struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Size string    `json:"size"` // "1m" or "1h"
}

// serveUsage answers GET /admin/usage?from=...&to=... (RFC 3339; default
// the last 24 hours, ending now) with usage per key, model and backend from
// the store. Usage is kept in buckets, per minute for the last 26 hours and
// per hour before; the answer counts every bucket overlapping [from, to)
// and lists them under "buckets", so what it covers is exact.
func (s *shared) serveUsage(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	from, to := now.Add(-24*time.Hour), now
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeJSONError(w, http.StatusBadRequest, p.name+" must be an RFC 3339 time, e.g. 2026-11-26T00:00:00Z")
				return
			}
			*p.dst = t
		}
	}
	if to.Before(from) {
		writeJSONError(w, http.StatusBadRequest, "from must not be after to")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	_ = s.usage.Flush(ctx) // this replica's latest usage; others flush every usageFlushEvery
	us, err := s.store.Query(ctx, from, to)
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, "the state store is unreachable")
		return
	}
	rows := make([]usageRow, 0, len(us))
	for _, u := range us {
		rows = append(rows, usageRow{Key: u.Key, Model: u.Model, Backend: u.Backend, Requests: u.Requests,
			PromptTokens: u.Prompt, CompletionTokens: u.Completion, TotalTokens: u.Prompt + u.Completion})
	}
	plan := ratelimit.PlanUsage(now, from, to)
	buckets := []usageBuckets{}
	if plan.HourFrom.Before(plan.HourTo) {
		buckets = append(buckets, usageBuckets{From: plan.HourFrom, To: plan.HourTo, Size: "1h"})
	}
	if plan.MinuteFrom.Before(plan.MinuteTo) {
		buckets = append(buckets, usageBuckets{From: plan.MinuteFrom, To: plan.MinuteTo, Size: "1m"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"from": from.UTC(), "to": to.UTC(), "buckets": buckets, "store": s.kind, "usage": rows})
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": strconv.Itoa(status)}})
}
