// Package ratelimit declares the shared state behind client-key limits,
// token quotas, usage counters and backend throttles, and implements it in
// memory for a single instance (Memory). The Redis implementation, for
// several replicas, lives in internal/store/redis; both pass the conformance
// suite in ratelimittest.
//
// Limits use a sliding log: over any interval of length Window, the admitted
// requests never exceed RPM and the admitted tokens (estimates, replaced by
// the true counts on Reconcile) never exceed TPM. Quotas count tokens per
// calendar day and month in UTC.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultWindow is the rolling window of Limits whose Window is zero.
const DefaultWindow = time.Minute

// MaxValue bounds every limit and token count. Larger numbers lose precision
// in Redis scripts (Lua numbers are doubles) and exceed any real quota.
const MaxValue = 1 << 50

// Usage is counted in two sizes of bucket: per minute for the last
// MinuteRetention, per hour for UsageRetention. A query reads minute
// buckets where they are kept and hourly ones before, so a range within
// the last day is answered to the minute and an older one to the hour.
const (
	// UsageRetention is how long hourly usage counters are kept.
	UsageRetention = 400 * 24 * time.Hour
	// MinuteRetention is how long per-minute usage counters are kept: a
	// little over a day, so the last 24 hours are always answered per minute.
	MinuteRetention = 26 * time.Hour
)

// usageFuture is how far past now Query looks, for clock skew between replicas.
const usageFuture = 5 * time.Minute

// Reasons a request is refused; Decision.Reason is one of them or "".
const (
	ReasonRPM          = "rpm"
	ReasonTPM          = "tpm"
	ReasonDailyQuota   = "daily_quota"
	ReasonMonthlyQuota = "monthly_quota"
)

// ErrInvalid is wrapped by every error about a bad argument: an empty key,
// negative or too large numbers, a malformed reservation.
var ErrInvalid = errors.New("ratelimit: invalid argument")

// Limits are one client key's limits. Zero means unlimited.
type Limits struct {
	// RPM caps the requests admitted in any rolling Window. Zero: no cap.
	RPM int64
	// TPM caps the tokens admitted in any rolling Window. Zero: no cap.
	TPM int64
	// Window is the length of the rolling window. Zero: DefaultWindow (1 minute).
	// When non-zero it must be at least a millisecond.
	Window time.Duration
	// DailyTokens caps the tokens of a calendar day in UTC. Zero: no cap.
	DailyTokens int64
	// MonthlyTokens caps the tokens of a calendar month in UTC. Zero: no cap.
	MonthlyTokens int64
}

// WindowOrDefault returns Window, or DefaultWindow when it is zero.
func (l Limits) WindowOrDefault() time.Duration {
	if l.Window == 0 {
		return DefaultWindow
	}
	return l.Window
}

// Unlimited reports whether no limit is set; such keys keep no state.
func (l Limits) Unlimited() bool {
	return l.RPM == 0 && l.TPM == 0 && l.DailyTokens == 0 && l.MonthlyTokens == 0
}

// Windowed reports whether RPM or TPM is set, i.e. the key keeps a sliding log.
func (l Limits) Windowed() bool { return l.RPM > 0 || l.TPM > 0 }

// Validate reports negative or too large limits and a window under 1ms.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", l.RPM}, {"tpm", l.TPM}, {"daily tokens", l.DailyTokens}, {"monthly tokens", l.MonthlyTokens}} {
		if f.v < 0 || f.v > MaxValue {
			return fmt.Errorf("%w: %s %d out of range [0, %d]", ErrInvalid, f.name, f.v, int64(MaxValue))
		}
	}
	if l.Window < 0 || (l.Window > 0 && l.Window < time.Millisecond) {
		return fmt.Errorf("%w: window %v: want 0 or at least 1ms", ErrInvalid, l.Window)
	}
	return nil
}

// ValidateRequest checks the arguments of Admit (tokens) or Reconcile
// (estimated and actual counts): a non-empty key, valid limits and token
// counts in [0, MaxValue]. Store implementations call it first.
func ValidateRequest(key string, l Limits, tokens ...int64) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if err := l.Validate(); err != nil {
		return err
	}
	for _, n := range tokens {
		if n < 0 || n > MaxValue {
			return fmt.Errorf("%w: token count %d out of range [0, %d]", ErrInvalid, n, int64(MaxValue))
		}
	}
	return nil
}

// Decision is the outcome of Admit.
type Decision struct {
	Allowed bool
	// Reason is why the request was refused: ReasonRPM, ReasonTPM,
	// ReasonDailyQuota or ReasonMonthlyQuota; "" when allowed. When several
	// limits refuse, it names the one with the longest RetryAfter (the
	// first in that order on a tie).
	Reason string
	// RemainingRequests is what RPM leaves in the window after this
	// decision; -1 when RPM is unset.
	RemainingRequests int64
	// RemainingTokens is the least that TPM, the daily and the monthly quota
	// leave after this decision; -1 when none of them is set.
	RemainingTokens int64
	// TokenLimit is the limit RemainingTokens is what is left of (TPM, the
	// daily or the monthly quota), so that the two can be shown together;
	// 0 when none is set.
	TokenLimit int64
	// RetryAfter, when refused, is the exact time after which the same
	// request would be admitted (absent other traffic): when the oldest
	// admissions leave the window, or when the quota's period ends.
	// Requests that can never pass (tokens above TPM or above a quota) get
	// Window for TPM and the end of the period for a quota. Zero when allowed.
	RetryAfter time.Duration
	// Reservation identifies the admission for Reconcile; empty when refused.
	Reservation string
}

// Limiter admits requests against per-key limits.
type Limiter interface {
	// Admit takes one request and tokens estimated tokens from key's limits,
	// atomically: all or nothing. key identifies the client key (an id, never
	// the secret). Errors wrap ErrInvalid for bad arguments.
	Admit(ctx context.Context, key string, l Limits, tokens int64) (Decision, error)
	// Reconcile replaces the estimate of a reservation by the true token
	// count (lower or higher), in the rolling window (while the admission is
	// still in it) and in the quotas (while their period is the one the
	// admission was made in). Call it at most once per reservation, with
	// the same key and limits as Admit.
	Reconcile(ctx context.Context, key string, l Limits, reservation string, estimated, actual int64) error
}

// Usage is what one (key, model, backend) consumed.
type Usage struct {
	Key, Model, Backend string
	Prompt, Completion  int64
	Requests            int64
}

// UsageStore keeps usage counters per minute for MinuteRetention and per
// hour for UsageRetention.
type UsageStore interface {
	// Record adds u to the minute and the hour containing at. Usage with
	// all counts zero is ignored, and so are buckets already expired.
	Record(ctx context.Context, at time.Time, u Usage) error
	// Query sums per (key, model, backend) over the buckets PlanUsage
	// returns for [from, to) at the store's now, sorted by key, model and
	// backend.
	Query(ctx context.Context, from, to time.Time) ([]Usage, error)
}

// Throttles shares backend cool-downs and open circuits between replicas,
// so that they route around a throttled or failing backend together.
type Throttles interface {
	// SetThrottle records that backend should not be called before until;
	// it keeps the later of the existing and the new time. Times already
	// past are ignored.
	SetThrottle(ctx context.Context, backend string, until time.Time) error
	// Throttles returns the cool-downs still in the future.
	Throttles(ctx context.Context) (map[string]time.Time, error)
	// SetCircuitOpen records that backend's circuit opened until until, as
	// SetThrottle does for cool-downs.
	SetCircuitOpen(ctx context.Context, backend string, until time.Time) error
	// OpenCircuits returns the open circuits whose cool-down is still in the
	// future.
	OpenCircuits(ctx context.Context) (map[string]time.Time, error)
}

// BackendNote is a backend's cool-down, or its circuit's opening, as one
// replica recorded it (Throttles).
type BackendNote struct {
	Backend     string
	Until       time.Time
	CircuitOpen bool // false: a cool-down
}

// BackendWatcher is a store that tells each replica of the notes any
// replica records, as they are recorded (the Redis store does, over
// pub/sub), so that replicas need not wait for their next read of
// Throttles and OpenCircuits.
type BackendWatcher interface {
	// Watch calls apply with each note recorded from now until ctx ends.
	// It returns once it listens, or with the first try's error while it
	// keeps trying.
	Watch(ctx context.Context, apply func(BackendNote)) error
}

// Store is all shared state of the gateway.
// StreamSlots counts a key's concurrent streams across the instances that
// share a store (a store may offer it; the Redis store does). Each open
// stream holds a lease its instance renews while the stream runs, so the
// slots of an instance that stops without giving them back free
// themselves when their leases run out.
type StreamSlots interface {
	// OpenStream takes one of key's max slots for lease; ok is false when
	// max are taken. id names the slot for RenewStream and CloseStream.
	OpenStream(ctx context.Context, key string, max int64, lease time.Duration) (id string, ok bool, err error)
	// RenewStream extends the slot's lease, taking the slot again if the
	// lease ran out meanwhile (its stream still runs).
	RenewStream(ctx context.Context, key, id string, lease time.Duration) error
	// CloseStream gives the slot back.
	CloseStream(ctx context.Context, key, id string) error
}

type Store interface {
	Limiter
	UsageStore
	Throttles
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// UsagePlan is the buckets a usage query reads: hourly buckets starting
// in [HourFrom, HourTo) and minute buckets starting in [MinuteFrom,
// MinuteTo). A span whose From is not before its To is empty. When both
// are non-empty, HourTo == MinuteFrom.
type UsagePlan struct {
	HourFrom, HourTo     time.Time
	MinuteFrom, MinuteTo time.Time
}

// PlanUsage returns the buckets that answer [from, to) at time now: every
// bucket overlapping the range, per minute from the first hour boundary
// after now-MinuteRetention on (where every minute bucket is still kept),
// per hour before it; none that expired (older than UsageRetention) and
// none starting later than 5 minutes past now (room for clock skew
// between replicas).
func PlanUsage(now, from, to time.Time) UsagePlan {
	now, from, to = now.UTC(), from.UTC(), to.UTC()
	// Bucket b of size d expires at b+retention: the oldest alive is the first after now-retention.
	oldestHour := now.Add(-UsageRetention).Truncate(time.Hour).Add(time.Hour)
	split := now.Add(-MinuteRetention).Truncate(time.Hour).Add(time.Hour)
	latest := now.Add(usageFuture).Truncate(time.Minute).Add(time.Minute)
	if to.After(latest) {
		to = latest
	}
	var p UsagePlan
	p.HourFrom = later(from.Truncate(time.Hour), oldestHour)
	p.HourTo = earlier(ceil(to, time.Hour), split)
	p.MinuteFrom = later(from.Truncate(time.Minute), split)
	p.MinuteTo = ceil(to, time.Minute)
	if !p.HourFrom.Before(p.HourTo) || !from.Before(to) {
		p.HourFrom, p.HourTo = split, split
	}
	if !p.MinuteFrom.Before(p.MinuteTo) || !from.Before(to) {
		p.MinuteFrom, p.MinuteTo = split, split
	}
	return p
}

// Hours calls f with the start of every hourly bucket in the plan, in order.
func (p UsagePlan) Hours(f func(time.Time)) { each(p.HourFrom, p.HourTo, time.Hour, f) }

// Minutes calls f with the start of every minute bucket in the plan, in order.
func (p UsagePlan) Minutes(f func(time.Time)) { each(p.MinuteFrom, p.MinuteTo, time.Minute, f) }

func each(from, to time.Time, d time.Duration, f func(time.Time)) {
	for t := from; t.Before(to); t = t.Add(d) {
		f(t)
	}
}

// ceil rounds t up to a multiple of d.
func ceil(t time.Time, d time.Duration) time.Time {
	if c := t.Truncate(d); c.Before(t) {
		return c.Add(d)
	}
	return t
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// UsageBuckets returns the hour and the minute containing at, and whether
// each is still kept at time now: what Record adds to.
func UsageBuckets(now, at time.Time) (hour, minute time.Time, hourKept, minuteKept bool) {
	now, at = now.UTC(), at.UTC()
	hour, minute = at.Truncate(time.Hour), at.Truncate(time.Minute)
	return hour, minute, hour.Add(UsageRetention).After(now), minute.Add(MinuteRetention).After(now)
}
