package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

const (
	// sep separates key, model, backend and metric in usage fields.
	sep = "\x1f"
	// queryBatch is how many hourly hashes one Query round trip reads.
	queryBatch = 168
)

// Record implements ratelimit.UsageStore: HINCRBY on the hour's hash in one
// MULTI/EXEC. Key, model and backend must not contain "\x1f".
func (s *Store) Record(ctx context.Context, at time.Time, u ratelimit.Usage) error {
	if strings.Contains(u.Key+u.Model+u.Backend, sep) {
		return fmt.Errorf("redis record: %w: usage name contains \\x1f", ratelimit.ErrInvalid)
	}
	if u.Prompt == 0 && u.Completion == 0 && u.Requests == 0 {
		return nil
	}
	hour := at.UTC().Truncate(time.Hour)
	key := s.usageKey(hour)
	base := u.Key + sep + u.Model + sep + u.Backend + sep
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, f := range []struct {
			metric string
			n      int64
		}{{"prompt", u.Prompt}, {"completion", u.Completion}, {"requests", u.Requests}} {
			if f.n != 0 {
				p.HIncrBy(ctx, key, base+f.metric, f.n)
			}
		}
		p.ExpireAt(ctx, key, hour.Add(ratelimit.UsageRetention))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis record: %w", err)
	}
	return nil
}

// Query implements ratelimit.UsageStore: it reads the hours in range,
// queryBatch hashes per pipelined round trip.
func (s *Store) Query(ctx context.Context, from, to time.Time) ([]ratelimit.Usage, error) {
	first, end := ratelimit.UsageHours(time.Now(), from, to)
	sums := make(map[[3]string]*ratelimit.Usage)
	for h := first; h.Before(end); {
		if err := s.queryBatch(ctx, &h, end, sums); err != nil {
			return nil, fmt.Errorf("redis query: %w", err)
		}
	}
	out := make([]ratelimit.Usage, 0, len(sums))
	for _, u := range sums {
		out = append(out, *u)
	}
	ratelimit.SortUsage(out)
	return out, nil
}

// queryBatch reads up to queryBatch hours from *h, advancing it.
func (s *Store) queryBatch(ctx context.Context, h *time.Time, end time.Time, sums map[[3]string]*ratelimit.Usage) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p := s.client.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, 0, queryBatch)
	for ; h.Before(end) && len(cmds) < queryBatch; *h = h.Add(time.Hour) {
		cmds = append(cmds, p.HGetAll(ctx, s.usageKey(*h)))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	for _, c := range cmds {
		fields, err := c.Result()
		if err != nil {
			return err
		}
		for f, v := range fields {
			if err := addField(sums, f, v); err != nil {
				return fmt.Errorf("%s: %w", c.Args()[1], err)
			}
		}
	}
	return nil
}

// addField adds one "<key>\x1f<model>\x1f<backend>\x1f<metric>" = count.
func addField(sums map[[3]string]*ratelimit.Usage, field, value string) error {
	parts := strings.Split(field, sep)
	if len(parts) != 4 {
		return fmt.Errorf("malformed usage field %q", field)
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return fmt.Errorf("usage field %q: %w", field, err)
	}
	k := [3]string{parts[0], parts[1], parts[2]}
	u := sums[k]
	if u == nil {
		u = &ratelimit.Usage{Key: k[0], Model: k[1], Backend: k[2]}
		sums[k] = u
	}
	switch parts[3] {
	case "prompt":
		u.Prompt += n
	case "completion":
		u.Completion += n
	case "requests":
		u.Requests += n
	default:
		return fmt.Errorf("unknown usage metric %q", parts[3])
	}
	return nil
}

func (s *Store) usageKey(hour time.Time) string {
	return s.prefix + "usage:" + hour.UTC().Format("2006010215")
}
