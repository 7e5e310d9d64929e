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
	"github.com/llmgate/llmgate/internal/ratelimit"
	redisstore "github.com/llmgate/llmgate/internal/store/redis"
	"github.com/llmgate/llmgate/internal/upstream"
)

// syncEvery is how often shared state is exchanged with the store.
const syncEvery = time.Second

// shared owns the gateway's link to its state store: the usage batcher, the
// exchange of backend cool-downs between replicas, and the store's health.
// Its loop runs from Serve and stops with it.
type shared struct {
	store    ratelimit.Store
	kind     string
	usage    *ratelimit.Batcher
	registry *upstream.Registry
	log      *slog.Logger
	timeout  time.Duration

	out     chan throttleNote // cool-downs to publish
	healthy atomic.Bool
	closeMu sync.Once
}

type throttleNote struct {
	backend string
	until   time.Time
}

// newShared opens the configured store. A Redis store starts even while
// Redis is unreachable; it connects when it can.
func newShared(cfg config.Store, reg *upstream.Registry, log *slog.Logger) (*shared, error) {
	s := &shared{kind: cfg.Type, registry: reg, log: log, timeout: cfg.Timeout.D(), out: make(chan throttleNote, 1024)}
	switch cfg.Type {
	case "redis":
		st, err := redisstore.New(context.Background(), redisstore.Options{URL: cfg.URL.Reveal(), Timeout: cfg.Timeout.D(), Lazy: true})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s.store = st
	default:
		s.store = ratelimit.NewMemory(nil)
	}
	s.usage = ratelimit.NewBatcher(s.store)
	s.healthy.Store(true)
	return s, nil
}

// onThrottle queues a backend's cool-down for the other replicas; it never blocks.
func (s *shared) onThrottle(backend string, until time.Time) {
	if s.kind != "redis" {
		return
	}
	select {
	case s.out <- throttleNote{backend, until}:
	default: // full: the next 429 will tell them
	}
}

// run exchanges state with the store until ctx ends.
func (s *shared) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		s.usage.Run(ctx, syncEvery, func(err error) { s.failed("usage flush", err) })
	})
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case n := <-s.out:
			c, cancel := context.WithTimeout(ctx, s.timeout)
			if err := s.store.SetThrottle(c, n.backend, n.until); err != nil {
				s.failed("publish throttle", err)
			}
			cancel()
		case <-t.C:
			s.poll(ctx)
		}
	}
}

// poll checks the store's health and applies other replicas' cool-downs.
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
		for name, until := range ts {
			if st := s.registry.Lookup(name); st != nil {
				st.Throttle(until)
			}
		}
	}
	if !s.healthy.Swap(true) {
		s.log.Info("state store reachable again", slog.String("store", s.kind))
	}
}

func (s *shared) failed(what string, err error) {
	if s.healthy.Swap(false) {
		s.log.Error("state store unreachable", slog.String("store", s.kind), slog.String("op", what), slog.Any("err", err))
	}
}

func (s *shared) close() {
	s.closeMu.Do(func() { _ = s.store.Close() })
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

// serveUsage answers GET /admin/usage?from=...&to=... (RFC 3339; default the
// last 24 hours) with usage per key, model and backend from the store.
func (s *shared) serveUsage(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	from, to := now.Add(-24*time.Hour), now.Add(time.Hour)
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
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	_ = s.usage.Flush(ctx, now)
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
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"from": from.UTC(), "to": to.UTC(), "store": s.kind, "usage": rows})
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": strconv.Itoa(status)}})
}
