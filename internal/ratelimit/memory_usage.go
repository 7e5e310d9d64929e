package ratelimit

import (
	"cmp"
	"context"
	"maps"
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
	return m.setUntil(ctx, m.throttles, backend, until)
}

// Throttles implements Throttles.
func (m *Memory) Throttles(ctx context.Context) (map[string]time.Time, error) {
	return m.untils(ctx, m.throttles)
}

// SetCircuitOpen implements Throttles.
func (m *Memory) SetCircuitOpen(ctx context.Context, backend string, until time.Time) error {
	return m.setUntil(ctx, m.circuits, backend, until)
}

// OpenCircuits implements Throttles.
func (m *Memory) OpenCircuits(ctx context.Context) (map[string]time.Time, error) {
	return m.untils(ctx, m.circuits)
}

// setUntil keeps the later of backend's time in set and until, if until is
// still to come.
func (m *Memory) setUntil(ctx context.Context, set map[string]time.Time, backend string, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := m.now()
	m.thrMu.Lock()
	defer m.thrMu.Unlock()
	prune(set, now)
	if cur, ok := set[backend]; until.After(now) && (!ok || until.After(cur)) {
		set[backend] = until
	}
	return nil
}

// untils returns a copy of set's times still to come.
func (m *Memory) untils(ctx context.Context, set map[string]time.Time) (map[string]time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.thrMu.Lock()
	defer m.thrMu.Unlock()
	prune(set, m.now())
	return maps.Clone(set), nil
}

// prune drops past times. Called with thrMu held.
func prune(set map[string]time.Time, now time.Time) {
	for b, until := range set {
		if !until.After(now) {
			delete(set, b)
		}
	}
}
