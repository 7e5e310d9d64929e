// Package retry holds the pure parts of retrying: the wait before a retry,
// the server's own delay from response headers, and the class of an outcome.
// Nothing here does I/O or reads a clock it is not given.
package retry

import (
	"math"
	"time"
)

// Backoff is API Management's retry timing. Zero fields mean "not given".
type Backoff struct {
	Interval    time.Duration
	Delta       time.Duration
	MaxInterval time.Duration
	// FirstFastRetry makes retry 1 immediate; retry n ≥ 2 still waits Wait(n).
	FirstFastRetry bool
}

// Wait returns the wait before retry n (n ≥ 1), per API Management's formula:
// only Interval → Interval; Interval and Delta → Interval+(n-1)·Delta;
// all three → Interval+2^(n-1)·random(0.8·Delta, 1.2·Delta), capped at
// MaxInterval. rnd returns a number in [0, 1).
func (b Backoff) Wait(n int, rnd func() float64) time.Duration {
	if n < 1 {
		return 0
	}
	if n == 1 && b.FirstFastRetry {
		return 0
	}
	var w time.Duration
	switch {
	case b.Delta == 0:
		w = b.Interval
	case b.MaxInterval == 0:
		w = b.Interval + time.Duration(n-1)*b.Delta
	default:
		jitter := 0.8 + 0.4*rnd()
		exp := math.Ldexp(1, min(n-1, 62)) * jitter * float64(b.Delta)
		if exp >= float64(b.MaxInterval) {
			return b.MaxInterval
		}
		w = b.Interval + time.Duration(exp)
	}
	if b.MaxInterval > 0 && w > b.MaxInterval {
		w = b.MaxInterval
	}
	return w
}
