package proxy

import (
	"sync/atomic"
	"time"
)

// budgetSpan is the window over which retries are weighed against requests.
const budgetSpan = 10

// budget caps retries across the gateway to a fraction of recent requests
// plus a floor, as Envoy's retry budget and gRPC's retry throttling do, so a
// total outage never becomes a retry storm. Safe for concurrent use.
type budget struct {
	sec      [budgetSpan]atomic.Int64 // unix second each bucket holds
	requests [budgetSpan]atomic.Int64
	retries  [budgetSpan]atomic.Int64
}

func (b *budget) slot(now time.Time) int {
	s := now.Unix()
	i := int(s % budgetSpan)
	if cur := b.sec[i].Load(); cur != s && b.sec[i].CompareAndSwap(cur, s) {
		b.requests[i].Store(0)
		b.retries[i].Store(0)
	}
	return i
}

// request counts a client request.
func (b *budget) request(now time.Time) { b.requests[b.slot(now)].Add(1) }

// allowRetry takes one retry from the budget, if there is one left.
func (b *budget) allowRetry(now time.Time, ratio, minPerSecond float64) bool {
	i := b.slot(now)
	from := now.Unix() - budgetSpan
	var reqs, rets int64
	for j := range b.sec {
		if b.sec[j].Load() > from {
			reqs += b.requests[j].Load()
			rets += b.retries[j].Load()
		}
	}
	if float64(rets) >= ratio*float64(reqs)+minPerSecond*budgetSpan {
		return false
	}
	b.retries[i].Add(1)
	return true
}
