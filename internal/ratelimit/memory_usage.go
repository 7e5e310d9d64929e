package ratelimit

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Record implements UsageStore.
func (m *Memory) Record(ctx context.Context, at time.Time, u Usage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if u.Prompt == 0 && u.Completion == 0 && u.Requests == 0 {
		return nil
	}
	now := m.now()
	hour := at.UTC().Truncate(time.Hour)
	if !hour.Add(UsageRetention).After(now) {
		return nil // already expired
	}
	m.usageMu.Lock()
	defer m.usageMu.Unlock()
	if now.Sub(m.usagePruned) >= time.Hour {
		m.usagePruned = now
		for h := range m.usage {
			if !time.Unix(h, 0).Add(UsageRetention).After(now) {
				delete(m.usage, h)
			}
		}
	}
	byKey := m.usage[hour.Unix()]
	if byKey == nil {
		byKey = make(map[usageKey]*Usage)
		m.usage[hour.Unix()] = byKey
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
	return nil
}

// Query implements UsageStore.
func (m *Memory) Query(ctx context.Context, from, to time.Time) ([]Usage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	first, end := UsageHours(m.now(), from, to)
	sums := make(map[usageKey]*Usage)
	m.usageMu.Lock()
	for h, byKey := range m.usage {
		if h < first.Unix() || h >= end.Unix() {
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
