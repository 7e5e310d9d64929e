package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// SetThrottle implements ratelimit.Throttles with one script run on the
// hash <prefix>throttles. until is rounded up to the millisecond.
func (s *Store) SetThrottle(ctx context.Context, backend string, until time.Time) error {
	ms := until.Add(time.Millisecond - 1).UnixMilli()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.throttle.Run(ctx, s.client, []string{s.throttleKey()}, backend, ms).Err(); err != nil {
		return fmt.Errorf("redis set throttle: %w", err)
	}
	return nil
}

// Throttles implements ratelimit.Throttles: one HGETALL, bounded by the
// number of backends since writes drop past fields.
func (s *Store) Throttles(ctx context.Context) (map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	fields, err := s.client.HGetAll(ctx, s.throttleKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis throttles: %w", err)
	}
	now := time.Now()
	out := make(map[string]time.Time, len(fields))
	for backend, v := range fields {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis throttles: backend %q: %w", backend, err)
		}
		if until := time.UnixMilli(ms); until.After(now) {
			out[backend] = until
		}
	}
	return out, nil
}

func (s *Store) throttleKey() string { return s.prefix + "throttles" }
