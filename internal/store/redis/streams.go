package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

var _ ratelimit.StreamSlots = (*Store)(nil)

// streamsKey is the ZSET of a client key's stream leases.
func (s *Store) streamsKey(key string) string { return s.keyBase(key) + "streams" }

// OpenStream implements ratelimit.StreamSlots: one script run takes a
// slot when fewer than max leases are live.
func (s *Store) OpenStream(ctx context.Context, key string, max int64, lease time.Duration) (string, bool, error) {
	if key == "" || max <= 0 || lease < time.Millisecond {
		return "", false, fmt.Errorf("redis open stream: %w: key %q, max %d, lease %v", ratelimit.ErrInvalid, key, max, lease)
	}
	id := nonce()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.openStream.Run(ctx, s.client, []string{s.streamsKey(key)}, max, lease.Milliseconds(), id).Int64()
	if err != nil {
		return "", false, fmt.Errorf("redis open stream: %w", err)
	}
	if n != 1 {
		return "", false, nil
	}
	return id, true, nil
}

// RenewStream implements ratelimit.StreamSlots.
func (s *Store) RenewStream(ctx context.Context, key, id string, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.renewStream.Run(ctx, s.client, []string{s.streamsKey(key)}, lease.Milliseconds(), id).Err(); err != nil {
		return fmt.Errorf("redis renew stream: %w", err)
	}
	return nil
}

// CloseStream implements ratelimit.StreamSlots.
func (s *Store) CloseStream(ctx context.Context, key, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.ZRem(ctx, s.streamsKey(key), id).Err(); err != nil {
		return fmt.Errorf("redis close stream: %w", err)
	}
	return nil
}
