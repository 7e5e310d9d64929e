package ratelimit

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// usageBuckets maps a bucket's start (Unix seconds) to its sums.
type usageBuckets map[int64]map[usageKey]*Usage

// add adds u to the bucket starting at start.
func (b usageBuckets) add(start time.Time, u Usage) {
	byKey := b[start.Unix()]
	if byKey == nil {
		byKey = make(map[usageKey]*Usage)
		b[start.Unix()] = byKey
	}
	k := usageKey{u.Key, u.Model, u.Backend}
	sum := byKey[k]
	if sum == nil {
		sum = &Usage{Key: u.Key, Model: u.Model, Backend: u.Backend}
		byKey[k] = sum
	}
	sum.Prompt += u.Prompt
	sum.Completion += u.Completion
	sum.Requests += u.Requests
}

// sum adds the buckets starting in [from, to) to sums.
func (b usageBuckets) sum(from, to time.Time, sums map[usageKey]*Usage) {
	for start, byKey := range b {
		if start < from.Unix() || start >= to.Unix() {
			continue
		}
		for k, u := range byKey {
			sum := sums[k]
			if sum == nil {
				sum = &Usage{Key: k.key, Model: k.model, Backend: k.backend}
				sums[k] = sum
			}
			sum.Prompt += u.Prompt
			sum.Completion += u.Completion
			sum.Requests += u.Requests
		}
	}
}

// prune drops the buckets that expired by now.
func (b usageBuckets) prune(now time.Time, retention time.Duration) {
	for start := range b {
		if !time.Unix(start, 0).Add(retention).After(now) {
			delete(b, start)
		}
	}
}

// Record implements UsageStore.
func (m *Memory) Record(ctx context.Context, at time.Time, u Usage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if u.Prompt == 0 && u.Completion == 0 && u.Requests == 0 {
		return nil
	}
	now := m.now()
	hour, minute, hourKept, minuteKept := UsageBuckets(now, at)
	m.usageMu.Lock()
	defer m.usageMu.Unlock()
	if now.Sub(m.hoursPruned) >= time.Hour {
		m.hoursPruned = now
		m.hours.prune(now, UsageRetention)
	}
	if now.Sub(m.minutesPruned) >= time.Minute {
		m.minutesPruned = now
		m.minutes.prune(now, MinuteRetention)
	}
	if hourKept {
		m.hours.add(hour, u)
	}
	if minuteKept {
		m.minutes.add(minute, u)
	}
	return nil
}

// Query implements UsageStore.
func (m *Memory) Query(ctx context.Context, from, to time.Time) ([]Usage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := PlanUsage(m.now(), from, to)
	sums := make(map[usageKey]*Usage)
	m.usageMu.Lock()
	m.hours.sum(p.HourFrom, p.HourTo, sums)
	m.minutes.sum(p.MinuteFrom, p.MinuteTo, sums)
	m.usageMu.Unlock()
	out := make([]Usage, 0, len(sums))
	for _, u := range sums {
		out = append(out, *u)
	}
	SortUsage(out)
	return out, nil
}

// SortUsage sorts by key, model and backend, the order Query returns.
func SortUsage(us []Usage) {
	slices.SortFunc(us, func(a, b Usage) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Model, b.Model), cmp.Compare(a.Backend, b.Backend))
	})
}

// SetThrottle implements Throttles.
func (m *Memory) SetThrottle(ctx context.Context, backend string, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := m.now()
	m.thrMu.Lock()
	defer m.thrMu.Unlock()
	m.pruneThrottles(now)
	if cur, ok := m.throttles[backend]; until.After(now) && (!ok || until.After(cur)) {
		m.throttles[backend] = until
	}
	return nil
}

// Throttles implements Throttles.
func (m *Memory) Throttles(ctx context.Context) (map[string]time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.thrMu.Lock()
	defer m.thrMu.Unlock()
	m.pruneThrottles(m.now())
	out := make(map[string]time.Time, len(m.throttles))
	for b, until := range m.throttles {
		out[b] = until
	}
	return out, nil
}

// pruneThrottles drops past cool-downs. Called with thrMu held.
func (m *Memory) pruneThrottles(now time.Time) {
	for b, until := range m.throttles {
		if !until.After(now) {
			delete(m.throttles, b)
		}
	}
}
