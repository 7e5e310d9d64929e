package metrics

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/internal/proxy"
)

// RecentSpan is the window of the recent per-backend figures; ShareSpan,
// the most recent part of it, is the window of the traffic split.
const (
	RecentSpan = time.Minute
	ShareSpan  = 10 * time.Second
)

const buckets = int(RecentSpan / time.Second)

// recent counts one backend's attempts in one-second buckets over RecentSpan.
// Safe for concurrent use.
type recent struct {
	mu  sync.Mutex // guards b
	b   [buckets]bucket
	all atomic.Int64 // attempts since start
}

type bucket struct {
	sec                              int64 // unix second the bucket holds
	attempts, errors, throttles, okN int64
	okLatency                        time.Duration // sum over okN successful attempts
}

func (r *recent) add(now time.Time, outcome string, latency time.Duration) {
	r.all.Add(1)
	sec := now.Unix()
	r.mu.Lock()
	b := &r.b[int(sec%int64(buckets))]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.attempts++
	switch outcome {
	case proxy.OutcomeOK:
		b.okN++
		b.okLatency += latency
	case proxy.OutcomeThrottled:
		b.throttles++
	case proxy.OutcomeClientError, proxy.OutcomeCanceled, proxy.OutcomeDeadline:
	default:
		b.errors++
	}
	r.mu.Unlock()
}

// Recent is one backend's figures over the recent window.
type Recent struct {
	// Attempts, Errors (5xx, timeouts, connection failures, broken streams,
	// refused credentials) and Throttles (429) over RecentSpan.
	Attempts, Errors, Throttles int64
	// Latency is the mean time to response headers of the successful
	// attempts over RecentSpan; zero if none.
	Latency time.Duration
	// Share is the backend's fraction of all attempts over ShareSpan; zero
	// when there were none.
	Share float64
	// Total is the attempts since start.
	Total int64
	// shareN is the attempts over ShareSpan.
	shareN int64
}

func (r *recent) read(now time.Time) Recent {
	sec := now.Unix()
	var out Recent
	var okN int64
	var okLat time.Duration
	r.mu.Lock()
	for _, b := range r.b {
		age := sec - b.sec
		if age < 0 || age >= int64(buckets) {
			continue
		}
		out.Attempts += b.attempts
		out.Errors += b.errors
		out.Throttles += b.throttles
		okN += b.okN
		okLat += b.okLatency
		if age < int64(ShareSpan/time.Second) {
			out.shareN += b.attempts
		}
	}
	r.mu.Unlock()
	if okN > 0 {
		out.Latency = okLat / time.Duration(okN)
	}
	out.Total = r.all.Load()
	return out
}

// Recent returns the recent figures of every backend that saw an attempt,
// by backend name, with each one's share of the traffic.
func (g *Gateway) Recent() map[string]Recent {
	now := g.now()
	var current map[string]bool
	if c := g.current.Load(); c != nil {
		current = *c
	}
	g.mu.RLock()
	rs := make(map[string]*recent, len(g.backends))
	for name, r := range g.backends {
		if current == nil || current[name] {
			rs[name] = r
		}
	}
	g.mu.RUnlock()
	out := make(map[string]Recent, len(rs))
	var total int64
	for name, r := range rs {
		x := r.read(now)
		total += x.shareN
		out[name] = x
	}
	if total > 0 {
		for name, x := range out {
			x.Share = float64(x.shareN) / float64(total)
			out[name] = x
		}
	}
	return out
}

// keyCounters are one key's totals for one model. Safe for concurrent use.
type keyCounters struct {
	requests, errors, prompt, completion atomic.Int64
}

func (k *keyCounters) add(status int, prompt, completion int64) {
	k.requests.Add(1)
	if status >= 400 {
		k.errors.Add(1)
	}
	if prompt > 0 {
		k.prompt.Add(prompt)
	}
	if completion > 0 {
		k.completion.Add(completion)
	}
}

// KeyUsage is what one key did with one model since start.
type KeyUsage struct {
	Key, Model string
	// Requests answered; Errors among them with a status of 400 or more.
	Requests, Errors int64
	// PromptTokens and CompletionTokens as reported upstream.
	PromptTokens, CompletionTokens int64
}

// KeyUsage returns every key's usage per model since start, sorted by key
// then model. Requests without a valid key are not included.
func (g *Gateway) KeyUsage() []KeyUsage {
	g.mu.RLock()
	out := make([]KeyUsage, 0, len(g.keys))
	for km, c := range g.keys {
		out = append(out, KeyUsage{
			Key: km.key, Model: km.model,
			Requests: c.requests.Load(), Errors: c.errors.Load(),
			PromptTokens: c.prompt.Load(), CompletionTokens: c.completion.Load(),
		})
	}
	g.mu.RUnlock()
	slices.SortFunc(out, func(a, b KeyUsage) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Model, b.Model)
	})
	return out
}
