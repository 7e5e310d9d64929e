// Package hist is a fixed-size, log-linear latency histogram for the load
// generator: recording is one atomic add into a preallocated array, so the
// generator's own cost stays flat however many requests it measures.
package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the resolution: 2^subBits buckets per power of two, so a
// recorded value is reported within 1/2^subBits (0.8 %) of its true value.
const (
	subBits = 7
	subN    = 1 << subBits
	// buckets covers every int64 nanosecond value.
	buckets = (64 - subBits) * subN
)

// H is a histogram of durations. The zero value is empty and ready to use.
// Record, Count and Quantile are safe for concurrent use. Must not be copied.
type H struct {
	counts [buckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
	sum    atomic.Int64
}

func index(v uint64) int {
	if v < subN {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subN, 2·subN)
	return (e+1)*subN + int(v>>e) - subN
}

// lowest returns the smallest value of bucket i.
func lowest(i int) uint64 {
	if i < subN {
		return uint64(i)
	}
	e := i/subN - 1
	return uint64(i%subN+subN) << e
}

// Record adds one duration; negative ones count as zero.
func (h *H) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[index(uint64(v))].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of recorded values.
func (h *H) Count() uint64 { return h.n.Load() }

// Max is the largest recorded value, exact.
func (h *H) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the exact mean, zero when empty.
func (h *H) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the value at quantile q in [0, 1] (the middle of its
// bucket, never above Max), zero when empty. Call it once recording is over.
func (h *H) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo := lowest(i)
			width := lowest(i+1) - lo
			return min(time.Duration(lo+width/2), h.Max())
		}
	}
	return h.Max()
}
