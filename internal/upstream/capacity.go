package upstream

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// staleAfter is how long a reported remaining capacity is trusted.
const staleAfter = time.Minute

// capacity tracks what a backend has left: the x-ratelimit-remaining-*
// headers it last sent (decremented by what was sent since), and the
// tokens and requests reserved against its declared per-minute capacity.
type capacity struct {
	remTokens, remRequests atomic.Int64 // -1: unknown
	limTokens, limRequests atomic.Int64 // 0: unknown
	seenAt                 atomic.Int64 // unix ns of the last report

	mu     sync.Mutex // guards the declared-capacity window
	second [60]int64  // unix second each bucket holds
	tokens [60]int64
	reqs   [60]int64
}

func (c *capacity) init() {
	c.remTokens.Store(-1)
	c.remRequests.Store(-1)
}

// Observe records the capacity a response reported.
func (s *State) Observe(h http.Header, now time.Time) {
	seen := false
	if v, ok := headerInt(h, "X-Ratelimit-Remaining-Tokens"); ok {
		s.cap.remTokens.Store(v)
		seen = true
	}
	if v, ok := headerInt(h, "X-Ratelimit-Remaining-Requests"); ok {
		s.cap.remRequests.Store(v)
		seen = true
	}
	if v, ok := headerInt(h, "X-Ratelimit-Limit-Tokens"); ok && v > 0 {
		s.cap.limTokens.Store(v)
	}
	if v, ok := headerInt(h, "X-Ratelimit-Limit-Requests"); ok && v > 0 {
		s.cap.limRequests.Store(v)
	}
	if seen {
		s.cap.seenAt.Store(now.UnixNano())
	}
}

func headerInt(h http.Header, k string) (int64, bool) {
	v := h[k]
	if len(v) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	return n, err == nil && n >= 0
}

// Reserve counts a request of tokens estimated tokens sent at now.
func (s *State) Reserve(tokens int64, now time.Time) {
	if s.cap.remTokens.Load() > 0 {
		s.cap.remTokens.Add(-tokens)
	}
	if s.cap.remRequests.Load() > 0 {
		s.cap.remRequests.Add(-1)
	}
	set := s.settings.Load()
	if set.TPM == 0 && set.RPM == 0 {
		return
	}
	s.cap.mu.Lock()
	i := s.cap.bucket(now)
	s.cap.tokens[i] += tokens
	s.cap.reqs[i]++
	s.cap.mu.Unlock()
}

// Reconcile replaces a reservation's estimate, made at at, by the true count.
func (s *State) Reconcile(at time.Time, estimated, actual int64) {
	set := s.settings.Load()
	if set.TPM == 0 || estimated == actual {
		return
	}
	s.cap.mu.Lock()
	if i := int(at.Unix() % 60); s.cap.second[i] == at.Unix() {
		s.cap.tokens[i] += actual - estimated
	}
	s.cap.mu.Unlock()
}

// bucket returns the index for now's second, clearing it if it held an older one.
func (c *capacity) bucket(now time.Time) int {
	sec := now.Unix()
	i := int(sec % 60)
	if c.second[i] != sec {
		c.second[i], c.tokens[i], c.reqs[i] = sec, 0, 0
	}
	return i
}

func (c *capacity) used(now time.Time) (tokens, reqs int64) {
	from := now.Unix() - 60
	for i := range c.second {
		if c.second[i] > from {
			tokens += c.tokens[i]
			reqs += c.reqs[i]
		}
	}
	return tokens, reqs
}

// Headroom returns the fraction of capacity left at now (1 when unknown)
// and whether a request of tokens estimated tokens still fits.
func (s *State) Headroom(tokens int64, now time.Time) (frac float64, fits bool) {
	frac, fits = 1, true
	take := func(rem, lim int64, need int64) {
		if rem < need {
			fits = false
		}
		if lim > 0 {
			frac = min(frac, max(float64(rem), 0)/float64(lim))
		}
	}
	if now.UnixNano()-s.cap.seenAt.Load() < int64(staleAfter) {
		set := s.settings.Load()
		if rt := s.cap.remTokens.Load(); rt >= 0 {
			lim := s.cap.limTokens.Load()
			if lim == 0 {
				lim = set.TPM
			}
			take(rt, lim, tokens)
		}
		if rr := s.cap.remRequests.Load(); rr >= 0 {
			lim := s.cap.limRequests.Load()
			if lim == 0 {
				lim = set.RPM
			}
			take(rr, lim, 1)
		}
	}
	set := s.settings.Load()
	if set.TPM > 0 || set.RPM > 0 {
		s.cap.mu.Lock()
		ut, ur := s.cap.used(now)
		s.cap.mu.Unlock()
		if set.TPM > 0 {
			take(set.TPM-ut, set.TPM, tokens)
		}
		if set.RPM > 0 {
			take(set.RPM-ur, set.RPM, 1)
		}
	}
	return frac, fits
}

// Remaining returns the last reported remaining tokens and requests (-1 when unknown or stale).
func (s *State) Remaining(now time.Time) (tokens, requests int64) {
	if now.UnixNano()-s.cap.seenAt.Load() >= int64(staleAfter) {
		return -1, -1
	}
	return s.cap.remTokens.Load(), s.cap.remRequests.Load()
}
