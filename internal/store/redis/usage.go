package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

const (
	// sep separates key, model, backend and metric in usage fields.
	sep = "\x1f"
	// queryBatch is how many usage hashes one Query round trip reads.
	queryBatch = 512
)

// Record implements ratelimit.UsageStore: HINCRBY on the minute's and the
// hour's hashes in one MULTI/EXEC (both carry the hour as hash tag, so
// they share a cluster slot). Key, model and backend must not contain "\x1f".
func (s *Store) Record(ctx context.Context, at time.Time, u ratelimit.Usage) error {
	if strings.Contains(u.Key+u.Model+u.Backend, sep) {
		return fmt.Errorf("redis record: %w: usage name contains \\x1f", ratelimit.ErrInvalid)
	}
	if u.Prompt == 0 && u.Completion == 0 && u.Requests == 0 {
		return nil
	}
	hour, minute, hourKept, minuteKept := ratelimit.UsageBuckets(time.Now(), at)
	if !hourKept && !minuteKept {
		return nil
	}
	base := u.Key + sep + u.Model + sep + u.Backend + sep
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, b := range []struct {
			key    string
			expire time.Time
			kept   bool
		}{
			{s.hourKey(hour), hour.Add(ratelimit.UsageRetention), hourKept},
			{s.minuteKey(minute), minute.Add(ratelimit.MinuteRetention), minuteKept},
		} {
			if !b.kept {
				continue
			}
			for _, f := range []struct {
				metric string
				n      int64
			}{{"prompt", u.Prompt}, {"completion", u.Completion}, {"requests", u.Requests}} {
				if f.n != 0 {
					p.HIncrBy(ctx, b.key, base+f.metric, f.n)
				}
			}
			p.ExpireAt(ctx, b.key, b.expire)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis record: %w", err)
	}
	return nil
}

// Query implements ratelimit.UsageStore: it reads the hashes of the
// buckets ratelimit.PlanUsage names, queryBatch per pipelined round trip
// (the last 24 hours: 1440 minute hashes, 3 round trips).
func (s *Store) Query(ctx context.Context, from, to time.Time) ([]ratelimit.Usage, error) {
	p := ratelimit.PlanUsage(time.Now(), from, to)
	var keys []string
	p.Hours(func(h time.Time) { keys = append(keys, s.hourKey(h)) })
	p.Minutes(func(m time.Time) { keys = append(keys, s.minuteKey(m)) })
	sums := make(map[[3]string]*ratelimit.Usage)
	for batch := range slices.Chunk(keys, queryBatch) {
		if err := s.queryBatch(ctx, batch, sums); err != nil {
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

// queryBatch reads the hashes keys in one round trip, adding them to sums.
func (s *Store) queryBatch(ctx context.Context, keys []string, sums map[[3]string]*ratelimit.Usage) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p := s.client.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, 0, len(keys))
	for _, k := range keys {
		cmds = append(cmds, p.HGetAll(ctx, k))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	for i, c := range cmds {
		fields, err := c.Result()
		if err != nil {
			return err
		}
		for f, v := range fields {
			if err := addField(sums, f, v); err != nil {
				return fmt.Errorf("%s: %w", keys[i], err)
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

// hourKey is the hash of an hour's usage: <prefix>usage:{YYYYMMDDHH}.
func (s *Store) hourKey(hour time.Time) string {
	return s.prefix + "usage:{" + hour.UTC().Format("2006010215") + "}"
}

// minuteKey is the hash of a minute's usage: <prefix>usage:{YYYYMMDDHH}:MM,
// in its hour's cluster slot.
func (s *Store) minuteKey(minute time.Time) string {
	m := minute.UTC()
	return s.prefix + "usage:{" + m.Format("2006010215") + "}:" + m.Format("04")
}
