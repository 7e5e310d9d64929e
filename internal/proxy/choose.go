package proxy

import (
	"time"

	"github.com/llmgate/llmgate/internal/balance"
)

// steerBelow is the fraction of capacity left under which a backend's
// weight is scaled down, so it drains before it ever returns 429.
const steerBelow = 0.2

// capacityPoll is how soon a backend out for a moment (at its concurrency
// cap, or its half-open probe in flight) is looked at again.
const capacityPoll = 20 * time.Millisecond

// choice is the outcome of choosing a backend for one attempt.
type choice struct {
	member int           // index into the route's members
	wait   time.Duration // wait before the attempt
	// blocked: no member can be called within MaxWait and the deadline;
	// wait is then the time until the earliest one can, and throttled tells
	// whether that one is cooling down (429) rather than out for another reason (503).
	blocked   bool
	throttled bool
	// panic: every allowed member's circuit is open, so circuits are ignored.
	panic bool
}

// choose picks the member for attempt number attempt and the wait before it.
// In order: an untried available member (no wait in Smart mode); an
// available one already tried, other than the one that just failed (the
// backoff wait); the one that just failed, if no other can be called before
// its backoff is over; else the earliest to recover, if that is within
// MaxWait and the deadline.
func (h *Handler) choose(cfg *Config, rt *Route, q *request, tried balance.Set, last, attempt int, now time.Time, prefer string) choice {
	n := len(rt.Members)
	var cands [balance.MaxCandidates]balance.Candidate
	var load [balance.MaxCandidates]float64
	allowed := allOf(n)
	if last >= 0 && n > 1 {
		allowed &^= 1 << uint(last)
	}
	var avail, short, open balance.Set
	earliest, earliestIdx, earliestThrottled := time.Time{}, -1, false
	minLat := time.Duration(0)
	for i, m := range rt.Members {
		b := &cfg.Backends[m.Backend]
		st := b.State
		w := b.Weight * st.Ramp(now)
		cands[i] = balance.Candidate{Weight: w, Priority: b.Priority}
		if st.Available(now) {
			avail = avail.With(i)
			if cfg.Steering || cfg.Policy == Headroom {
				frac, fits := st.Headroom(q.estimate, now)
				if !fits && cfg.Steering {
					short = short.With(i)
				}
				switch {
				case cfg.Policy == Headroom:
					cands[i].Weight = w * max(frac, 0.001)
				case frac < steerBelow:
					cands[i].Weight = w * max(frac/steerBelow, 0.001)
				}
			}
			switch cfg.Policy {
			case LeastInflight:
				load[i] = float64(st.InFlight())
			case Latency:
				if l := st.Latency(); l > 0 && (minLat == 0 || l < minLat) {
					minLat = l
				}
			}
			continue
		}
		// The backend that just failed counts too: if it recovers first,
		// it is the one to wait for (and the truthful Retry-After).
		if st.OnlyCircuitOpen(now) {
			open = open.With(i)
		}
		ready := st.ReadyAt()
		// A refused credential is a broken backend, not a rate limit: 503.
		throttled := st.ThrottledUntil().After(now) && !st.AuthBroken()
		if !ready.After(now) {
			// Out for a moment (at its concurrency cap, or its probe in
			// flight): look again shortly.
			ready = now.Add(capacityPoll)
		}
		if earliestIdx < 0 || ready.Before(earliest) {
			earliest, earliestIdx, earliestThrottled = ready, i, throttled
		}
	}
	if cfg.Policy == Latency && minLat > 0 {
		for i, m := range rt.Members {
			if l := cfg.Backends[m.Backend].State.Latency(); l > 0 {
				cands[i].Weight *= float64(minLat) / float64(l)
			}
		}
	}
	backoff := func(fresh bool) time.Duration {
		if attempt == 0 || (fresh && cfg.Mode == Smart) {
			return 0
		}
		return cfg.Backoff.Wait(attempt, h.float)
	}
	pick := func(skip balance.Set) (int, bool) {
		if cfg.Policy == LeastInflight {
			return balance.PickLeast(cands[:n], load[:n], skip, h.rand())
		}
		return balance.Pick(cands[:n], skip, h.rand())
	}
	if attempt == 0 && prefer != "" {
		for i, m := range rt.Members {
			if cfg.Backends[m.Backend].Name == prefer && avail.Has(i) && !short.Has(i) {
				return choice{member: i}
			}
		}
	}
	// Untried before tried (the backend that just failed is never next while
	// another exists); among each, available before short of capacity.
	for _, set := range [...]balance.Set{
		allowed & avail &^ short &^ tried,
		allowed & avail &^ tried,
		allowed & avail &^ short,
		allowed & avail,
	} {
		if set == 0 {
			continue
		}
		if i, ok := pick(^set); ok {
			return choice{member: i, wait: backoff(!tried.Has(i))}
		}
	}
	// Only the backend that just failed can be called: it is tried again
	// (after the backoff) rather than waiting longer for another to
	// recover, or giving up with retries left.
	if last >= 0 && n > 1 && avail.Has(last) && (earliestIdx < 0 || earliest.Sub(now) > backoff(false)) {
		return choice{member: last, wait: backoff(false)}
	}
	// No backend is available and some are out only because their circuit
	// is open: a retry tries one of them anyway (Envoy's panic mode), so a
	// pool never sticks at 503 because its breakers tripped. While any
	// backend can take requests, an open circuit gets none but its probe.
	if avail == 0 {
		for _, set := range [...]balance.Set{allowed & open &^ tried, allowed & open} {
			if set == 0 {
				continue
			}
			if i, ok := pick(^set); ok {
				return choice{member: i, wait: backoff(!tried.Has(i)), panic: true}
			}
		}
		if last >= 0 && n > 1 && open.Has(last) && (earliestIdx < 0 || earliest.Sub(now) > backoff(false)) {
			return choice{member: last, wait: backoff(false), panic: true}
		}
	}
	until := earliest.Sub(now)
	if until > cfg.MaxWait || (!q.deadline.IsZero() && earliest.After(q.deadline)) {
		return choice{member: earliestIdx, wait: until, blocked: true, throttled: earliestThrottled}
	}
	return choice{member: earliestIdx, wait: max(until, backoff(!tried.Has(earliestIdx)))}
}

// earliestFree returns how long until the first member of the route can be
// called: 0 if one is available now.
func earliestFree(cfg *Config, rt *Route, now time.Time) time.Duration {
	best := time.Duration(-1)
	for _, m := range rt.Members {
		st := cfg.Backends[m.Backend].State
		d := time.Duration(0)
		if !st.Available(now) {
			d = max(st.ReadyAt().Sub(now), 0)
		}
		if best < 0 || d < best {
			best = d
		}
	}
	return max(best, 0)
}

func (h *Handler) float() float64 { return float64(h.rand()>>11) / (1 << 53) }

func allOf(n int) balance.Set {
	if n >= balance.MaxCandidates {
		return ^balance.Set(0)
	}
	return balance.Set(1)<<uint(n) - 1
}
