package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	memShards = 16
	// memSweepEvery is how often (on the store's clock) a shard drops the
	// state of keys that were not called since their entries expired.
	memSweepEvery = time.Minute
)

// Memory is the in-process Store for a single instance. Safe for concurrent
// use; must not be copied.
//
// Its memory is bounded: each call prunes the key's expired admissions and
// frees the key's state once it holds nothing, and every minute (on the
// injected clock, during any call to that shard) a sweep does the same for
// keys no longer called. No goroutine runs in the background, so Close has
// nothing to stop.
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	seq    atomic.Uint64 // reservation ids
	shards [memShards]memShard

	usageMu       sync.Mutex // guards hours, minutes, hoursPruned and minutesPruned
	hours         usageBuckets
	minutes       usageBuckets
	hoursPruned   time.Time // when expired hours were last dropped (every hour)
	minutesPruned time.Time // when expired minutes were last dropped (every minute)

	thrMu     sync.Mutex // guards throttles and circuits
	throttles map[string]time.Time
	circuits  map[string]time.Time
}

var _ Store = (*Memory)(nil)

// memShard holds the keys hashing to it.
type memShard struct {
	mu        sync.Mutex // guards keys and lastSweep
	keys      map[string]*memKey
	lastSweep time.Time
}

// memKey is one key's state. Times are Unix nanoseconds.
type memKey struct {
	log    []memEntry // admissions still in the window, ascending by at
	tokens int64      // sum of log[i].tokens
	window int64      // window of the last call, for the sweep
	// day and month are the periods dayUsed and monthUsed count (days and
	// months since the epoch); usage of an earlier period is dropped.
	day, month         int64
	dayUsed, monthUsed int64
}

type memEntry struct {
	at     int64
	id     uint64
	tokens int64
}

type usageKey struct{ key, model, backend string }

// NewMemory returns an empty in-memory Store reading time from now; nil
// means time.Now.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{
		now:       now,
		seed:      maphash.MakeSeed(),
		hours:     usageBuckets{},
		minutes:   usageBuckets{},
		throttles: make(map[string]time.Time),
		circuits:  make(map[string]time.Time),
	}
	for i := range m.shards {
		m.shards[i].keys = make(map[string]*memKey)
	}
	return m
}

// Ping always succeeds.
func (m *Memory) Ping(ctx context.Context) error { return nil }

// Close does nothing: Memory owns no goroutine or connection.
func (m *Memory) Close() error { return nil }

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%memShards]
}

// Admit implements Limiter.
func (m *Memory) Admit(ctx context.Context, key string, l Limits, tokens int64) (Decision, error) {
	if err := ValidateRequest(key, l, tokens); err != nil {
		return Decision{}, err
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	now := m.now()
	if l.Unlimited() {
		return Decision{Allowed: true, RemainingRequests: -1, RemainingTokens: -1,
			Reservation: m.reservation(now.UnixNano())}, nil
	}
	win := l.WindowOrDefault().Nanoseconds()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(now)
	st := sh.keys[key]
	if st == nil {
		st = &memKey{}
	}
	defer sh.release(key, st)

	st.window = win
	ns := now.UnixNano()
	if n := len(st.log); n > 0 && ns < st.log[n-1].at {
		ns = st.log[n-1].at // the clock stepped back: keep the log ordered
	}
	st.prune(ns - win)
	day, dayEnd, month, monthEnd := periods(now)
	st.roll(day, month)

	var v verdict
	if l.RPM > 0 && int64(len(st.log)) >= l.RPM {
		// The slot frees when the entry at len-RPM leaves the window.
		v.deny(ReasonRPM, time.Duration(st.log[int64(len(st.log))-l.RPM].at+win-ns))
	}
	if l.TPM > 0 {
		switch {
		case tokens > l.TPM:
			v.deny(ReasonTPM, time.Duration(win))
		case st.tokens+tokens > l.TPM:
			v.deny(ReasonTPM, st.tokensFreeAfter(st.tokens+tokens-l.TPM, win, ns))
		}
	}
	if l.DailyTokens > 0 && st.dayUsed+tokens > l.DailyTokens {
		v.deny(ReasonDailyQuota, dayEnd.Sub(now))
	}
	if l.MonthlyTokens > 0 && st.monthUsed+tokens > l.MonthlyTokens {
		v.deny(ReasonMonthlyQuota, monthEnd.Sub(now))
	}

	d := Decision{Allowed: v.reason == "", Reason: v.reason, RetryAfter: v.after}
	if d.Allowed {
		id := m.seq.Add(1)
		if l.Windowed() {
			st.log = append(st.log, memEntry{at: ns, id: id, tokens: tokens})
			st.tokens += tokens
		}
		if l.DailyTokens > 0 {
			st.dayUsed += tokens
		}
		if l.MonthlyTokens > 0 {
			st.monthUsed += tokens
		}
		d.Reservation = formatReservation(ns, id)
	}
	d.RemainingRequests, d.RemainingTokens, d.TokenLimit = st.remaining(l)
	return d, nil
}

// Reconcile implements Limiter.
func (m *Memory) Reconcile(ctx context.Context, key string, l Limits, reservation string, estimated, actual int64) error {
	if err := ValidateRequest(key, l, estimated, actual); err != nil {
		return err
	}
	at, id, err := parseReservation(reservation)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.Unlimited() {
		return nil
	}
	now := m.now()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.keys[key]
	if st == nil {
		st = &memKey{window: l.WindowOrDefault().Nanoseconds()}
	}
	defer sh.release(key, st)

	delta := actual - estimated
	if l.Windowed() {
		st.prune(now.UnixNano() - l.WindowOrDefault().Nanoseconds())
		i := sort.Search(len(st.log), func(i int) bool { return st.log[i].at >= at })
		for ; i < len(st.log) && st.log[i].at == at; i++ {
			if e := &st.log[i]; e.id == id {
				delta = actual - e.tokens
				st.tokens += delta
				e.tokens = actual
				break
			}
		}
	}
	day, _, month, _ := periods(now)
	st.roll(day, month)
	resDay, _, resMonth, _ := periods(time.Unix(0, at))
	if l.DailyTokens > 0 && resDay == day {
		st.dayUsed = max(st.dayUsed+delta, 0)
	}
	if l.MonthlyTokens > 0 && resMonth == month {
		st.monthUsed = max(st.monthUsed+delta, 0)
	}
	return nil
}

// verdict collects refusals, keeping the one with the longest wait.
type verdict struct {
	reason string
	after  time.Duration
}

func (v *verdict) deny(reason string, after time.Duration) {
	if v.reason == "" || after > v.after {
		v.reason, v.after = reason, after
	}
}

// prune drops the admissions at or before cutoff.
func (st *memKey) prune(cutoff int64) {
	i := 0
	for i < len(st.log) && st.log[i].at <= cutoff {
		st.tokens -= st.log[i].tokens
		i++
	}
	if i == len(st.log) {
		st.log, st.tokens = nil, 0
		return
	}
	st.log = st.log[i:]
}

// tokensFreeAfter returns how long until need tokens have left the window.
func (st *memKey) tokensFreeAfter(need, win, now int64) time.Duration {
	var freed int64
	for _, e := range st.log {
		freed += e.tokens
		if freed >= need {
			return time.Duration(e.at + win - now)
		}
	}
	return time.Duration(win) // unreachable while tokens is the sum of the log
}

// roll starts new quota periods.
func (st *memKey) roll(day, month int64) {
	if st.day != day {
		st.day, st.dayUsed = day, 0
	}
	if st.month != month {
		st.month, st.monthUsed = month, 0
	}
}

func (st *memKey) remaining(l Limits) (requests, tokens, of int64) {
	requests, tokens = -1, -1
	if l.RPM > 0 {
		requests = max(l.RPM-int64(len(st.log)), 0)
	}
	lower := func(limit, used int64) {
		if v := max(limit-used, 0); tokens < 0 || v < tokens {
			tokens, of = v, limit
		}
	}
	if l.TPM > 0 {
		lower(l.TPM, st.tokens)
	}
	if l.DailyTokens > 0 {
		lower(l.DailyTokens, st.dayUsed)
	}
	if l.MonthlyTokens > 0 {
		lower(l.MonthlyTokens, st.monthUsed)
	}
	return requests, tokens, of
}

func (st *memKey) empty() bool {
	return len(st.log) == 0 && st.dayUsed == 0 && st.monthUsed == 0
}

// release stores st under key, or frees it when it holds nothing. Called with mu held.
func (sh *memShard) release(key string, st *memKey) {
	if st.empty() {
		delete(sh.keys, key)
		return
	}
	sh.keys[key] = st
}

// sweep frees the state of idle keys, at most every memSweepEvery. Called with mu held.
func (sh *memShard) sweep(now time.Time) {
	if now.Sub(sh.lastSweep) < memSweepEvery {
		return
	}
	sh.lastSweep = now
	ns := now.UnixNano()
	day, _, month, _ := periods(now)
	for key, st := range sh.keys {
		st.prune(ns - st.window)
		st.roll(day, month)
		if st.empty() {
			delete(sh.keys, key)
		}
	}
}

// periods returns the UTC day and month of t (counted from the epoch) and their ends.
func periods(t time.Time) (day int64, dayEnd time.Time, month int64, monthEnd time.Time) {
	t = t.UTC()
	y, mo, d := t.Date()
	start := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	day = start.Unix() / 86400
	month = int64(y)*12 + int64(mo) - 1
	return day, start.AddDate(0, 0, 1), month, time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
}

func (m *Memory) reservation(ns int64) string {
	return formatReservation(ns, m.seq.Add(1))
}

// formatReservation encodes the admission time, so Reconcile finds the entry
// and the quota period, and a unique id.
func formatReservation(ns int64, id uint64) string {
	b := make([]byte, 0, 32)
	b = strconv.AppendInt(b, ns, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, id, 10)
	return string(b)
}

func parseReservation(r string) (at int64, id uint64, err error) {
	ts, ids, ok := strings.Cut(r, "-")
	if ok {
		at, err = strconv.ParseInt(ts, 10, 64)
		if err == nil {
			id, err = strconv.ParseUint(ids, 10, 64)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%w: malformed reservation %q", ErrInvalid, r)
	}
	return at, id, nil
}
