package sim

import (
	"sync"
	"time"
)

// maxDeployments bounds the number of deployments whose quota windows are tracked.
const maxDeployments = 4096

// quota enforces tokens and requests per window for each deployment with a sliding log of
// admissions. Safe for concurrent use.
type quota struct {
	tpm, rpm int64
	window   time.Duration

	mu      sync.Mutex         // guards windows
	windows map[string]*window // by deployment
}

// window is the admission log of one deployment.
type window struct {
	mu     sync.Mutex  // guards the fields below
	log    []admission // admissions in time order; log[head:] are live
	head   int
	tokens int64 // sum of tokens in log[head:]
}

type admission struct {
	at     time.Time
	tokens int64
}

// decision is the result of one admission check.
type decision struct {
	admitted bool
	// never means the request alone exceeds TPM and can never be admitted.
	never bool
	// byTokens tells which limit refused: tokens if true, requests if false.
	byTokens bool
	// retryAfter is the wait after which the same request would be admitted; if never, the
	// wait until the window is empty (0 if it is), after which any request that fits is.
	retryAfter time.Duration
	// remaining requests and tokens in the window after this decision; -1 if unlimited.
	remainingRequests, remainingTokens int64
}

func newQuota(tpm, rpm int, win time.Duration) *quota {
	return &quota{
		tpm:     int64(max(tpm, 0)),
		rpm:     int64(max(rpm, 0)),
		window:  win,
		windows: make(map[string]*window),
	}
}

func (q *quota) enabled() bool { return q.tpm > 0 || q.rpm > 0 }

// lookup returns the window of deployment dep, creating it if there is room; nil if not.
func (q *quota) lookup(dep string) *window {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.windows[dep]
	if w == nil {
		if len(q.windows) >= maxDeployments {
			return nil
		}
		w = &window{}
		q.windows[dep] = w
	}
	return w
}

// admit charges cost tokens and one request to w at now if both fit in the window.
func (q *quota) admit(w *window, cost int64, now time.Time) decision {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now, q.window)
	count := int64(len(w.log) - w.head)
	if q.tpm > 0 && cost > q.tpm {
		d := decision{never: true, byTokens: true,
			remainingRequests: q.remaining(q.rpm, count), remainingTokens: q.remaining(q.tpm, w.tokens)}
		// expire drops admissions from the head only, so the window is empty once the latest of
		// them (concurrent admissions may be logged slightly out of order) is a window old.
		for _, a := range w.log[w.head:] {
			d.retryAfter = max(d.retryAfter, a.at.Add(q.window).Sub(now))
		}
		return d
	}
	if q.fits(count, w.tokens, cost) {
		// A request that costs no tokens needs a log entry only to count requests.
		if q.rpm > 0 || cost > 0 {
			w.log = append(w.log, admission{at: now, tokens: cost})
			w.tokens += cost
			count++
		}
		return decision{admitted: true,
			remainingRequests: q.remaining(q.rpm, count), remainingTokens: q.remaining(q.tpm, w.tokens)}
	}
	d := decision{
		byTokens:          q.tpm > 0 && w.tokens+cost > q.tpm,
		remainingRequests: q.remaining(q.rpm, count),
		remainingTokens:   q.remaining(q.tpm, w.tokens),
	}
	// Find the first expiry after which the request fits. Removing every entry always makes it
	// fit, because cost <= tpm and rpm >= 1.
	c, t := count, w.tokens
	for _, a := range w.log[w.head:] {
		c--
		t -= a.tokens
		if q.fits(c, t, cost) {
			d.retryAfter = a.at.Add(q.window).Sub(now)
			break
		}
	}
	return d
}

// remainingOf reports the remaining requests and tokens at now of deployment dep (its full
// limits if it has no window yet) or, if dep is "", the least of every tracked deployment (the
// limits if there are none): a value no deployment is below. -1 means unlimited.
func (q *quota) remainingOf(dep string, now time.Time) (requests, tokens int64) {
	requests, tokens = q.remaining(q.rpm, 0), q.remaining(q.tpm, 0)
	q.mu.Lock()
	defer q.mu.Unlock()
	if dep != "" {
		if w := q.windows[dep]; w != nil {
			return q.peek(w, now)
		}
		return requests, tokens
	}
	// Lock order: q.mu, then a window's mu; admit and peek never take q.mu.
	for _, w := range q.windows {
		r, t := q.peek(w, now)
		requests, tokens = min(requests, r), min(tokens, t)
	}
	return requests, tokens
}

// peek reports the remaining requests and tokens of w at now without admitting anything.
func (q *quota) peek(w *window, now time.Time) (requests, tokens int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now, q.window)
	return q.remaining(q.rpm, int64(len(w.log)-w.head)), q.remaining(q.tpm, w.tokens)
}

func (q *quota) fits(count, tokens, cost int64) bool {
	return (q.rpm == 0 || count+1 <= q.rpm) && (q.tpm == 0 || tokens+cost <= q.tpm)
}

func (q *quota) remaining(limit, used int64) int64 {
	if limit == 0 {
		return -1
	}
	return max(limit-used, 0)
}

// expire drops admissions that are at least one window old; w.mu must be held.
func (w *window) expire(now time.Time, win time.Duration) {
	for w.head < len(w.log) && now.Sub(w.log[w.head].at) >= win {
		w.tokens -= w.log[w.head].tokens
		w.log[w.head] = admission{}
		w.head++
	}
	if w.head == len(w.log) {
		w.log = w.log[:0]
		w.head = 0
	} else if w.head >= 1024 && w.head*2 >= len(w.log) {
		n := copy(w.log, w.log[w.head:])
		clear(w.log[n:])
		w.log = w.log[:n]
		w.head = 0
	}
}
