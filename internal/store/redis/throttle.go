package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

// Kinds of backend time replicas share, as published on the backends
// channel.
const (
	kindThrottle = "throttle"
	kindCircuit  = "circuit"
)

// SetThrottle implements ratelimit.Throttles with one script run on the
// hash <prefix>throttles, which also publishes the cool-down (see Watch).
// until is rounded up to the millisecond.
func (s *Store) SetThrottle(ctx context.Context, backend string, until time.Time) error {
	return s.setUntil(ctx, s.throttleKey(), kindThrottle, backend, until)
}

// Throttles implements ratelimit.Throttles: one HGETALL, bounded by the
// number of backends since writes drop past fields.
func (s *Store) Throttles(ctx context.Context) (map[string]time.Time, error) {
	return s.untils(ctx, s.throttleKey(), "throttles")
}

// SetCircuitOpen implements ratelimit.Throttles as SetThrottle does, on
// the hash <prefix>circuits.
func (s *Store) SetCircuitOpen(ctx context.Context, backend string, until time.Time) error {
	return s.setUntil(ctx, s.circuitKey(), kindCircuit, backend, until)
}

// OpenCircuits implements ratelimit.Throttles.
func (s *Store) OpenCircuits(ctx context.Context) (map[string]time.Time, error) {
	return s.untils(ctx, s.circuitKey(), "circuits")
}

func (s *Store) setUntil(ctx context.Context, key, kind, backend string, until time.Time) error {
	ms := until.Add(time.Millisecond - 1).UnixMilli()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.throttle.Run(ctx, s.client, []string{key}, backend, ms, s.backendsChannel(), kind).Err(); err != nil {
		return fmt.Errorf("redis set %s: %w", kind, err)
	}
	return nil
}

func (s *Store) untils(ctx context.Context, key, what string) (map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	fields, err := s.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", what, err)
	}
	now := time.Now()
	out := make(map[string]time.Time, len(fields))
	for backend, v := range fields {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis %s: backend %q: %w", what, backend, err)
		}
		if until := time.UnixMilli(ms); until.After(now) {
			out[backend] = until
		}
	}
	return out, nil
}

// Watch calls apply with every cool-down and circuit opening any replica
// records (this one's included) from the moment it subscribes until ctx
// ends. It returns once subscribed, or with the error of the first try
// (the subscription is kept and retried: the client reconnects by itself
// and subscribes again). Notes published while it was disconnected are not
// replayed: Throttles and OpenCircuits hold them.
func (s *Store) Watch(ctx context.Context, apply func(ratelimit.BackendNote)) error {
	ps := s.client.Subscribe(ctx, s.backendsChannel())
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	_, err := ps.Receive(rctx) // the subscription's confirmation
	cancel()
	ch := ps.Channel()
	go func() {
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				if n, ok := parseNote(m.Payload); ok {
					apply(n)
				}
			}
		}
	}()
	if err != nil {
		return fmt.Errorf("redis subscribe: %w", err)
	}
	return nil
}

// parseNote reads "kind until-ms backend".
func parseNote(p string) (ratelimit.BackendNote, bool) {
	kind, rest, ok1 := strings.Cut(p, " ")
	ms, backend, ok2 := strings.Cut(rest, " ")
	v, err := strconv.ParseInt(ms, 10, 64)
	if !ok1 || !ok2 || err != nil || backend == "" {
		return ratelimit.BackendNote{}, false
	}
	n := ratelimit.BackendNote{Backend: backend, Until: time.UnixMilli(v)}
	switch kind {
	case kindThrottle:
	case kindCircuit:
		n.CircuitOpen = true
	default:
		return ratelimit.BackendNote{}, false
	}
	return n, true
}

func (s *Store) throttleKey() string     { return s.prefix + "throttles" }
func (s *Store) circuitKey() string      { return s.prefix + "circuits" }
func (s *Store) backendsChannel() string { return s.prefix + "backends" }
