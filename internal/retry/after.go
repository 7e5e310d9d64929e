package retry

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDelay bounds any delay read from a response, so a broken or hostile
// header cannot park a backend for days.
const maxDelay = 24 * time.Hour

// Delay returns how long a backend that answered with class c asked to be
// left alone. A 429 is read in every form After knows; a server fault only
// in the explicit retry headers, since OpenAI and Azure send their
// x-ratelimit-reset-* headers on every answer, and a reset alone says
// nothing about a 500. Other answers (a success, a caller's fault, a
// refused credential, a redirect) never ask for a wait.
func Delay(c Class, h http.Header, now time.Time) (time.Duration, bool) {
	switch c {
	case RateLimited:
		return After(h, now)
	case Transient:
		return explicit(h, now)
	}
	return 0, false
}

// After returns how long the backend asked us to wait, read from the forms
// in use: retry-after-ms, x-ms-retry-after-ms, Retry-After (seconds or an
// HTTP date), and x-ratelimit-reset-requests / -tokens (seconds, or Go-style
// durations such as "6m0s" or "250ms"). Values of 0 or below mean unknown.
// ok is false when no usable value is present.
func After(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if d, ok := explicit(h, now); ok {
		return d, true
	}
	// OpenAI and Azure reset headers: the exhausted limit's reset is the one
	// that matters; if none says it is exhausted, the longest is safe.
	var best time.Duration
	found := false
	for _, kind := range [...]string{"Requests", "Tokens"} {
		d, ok := Reset(h.Get("X-Ratelimit-Reset-" + kind))
		if !ok {
			continue
		}
		if h.Get("X-Ratelimit-Remaining-"+kind) == "0" {
			return d, true
		}
		if d > best {
			best = d
		}
		found = true
	}
	return best, found
}

// explicit reads the headers whose only meaning is "retry after":
// retry-after-ms, x-ms-retry-after-ms and Retry-After.
func explicit(h http.Header, now time.Time) (time.Duration, bool) {
	if d, ok := millis(h.Get("Retry-After-Ms")); ok {
		return d, true
	}
	if d, ok := millis(h.Get("X-Ms-Retry-After-Ms")); ok {
		return d, true
	}
	return RetryAfter(h.Get("Retry-After"), now)
}

func millis(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f <= 0 || f != f {
		return 0, false
	}
	return positive(clamp(f * float64(time.Millisecond)))
}

// positive reports a delay that rounds to zero as unknown.
func positive(d time.Duration) (time.Duration, bool) {
	if d <= 0 {
		return 0, false
	}
	return d, true
}

// RetryAfter parses a Retry-After value: delay-seconds (fractions accepted)
// or an HTTP date.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if d, ok, number := seconds(v); number {
		return d, ok
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0, false
	}
	return clamp(float64(d)), true
}

// Reset parses an x-ratelimit-reset-* value: seconds ("12", "0.5") or a Go
// style duration ("6m0s", "250ms", "1h2m3.5s").
func Reset(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if d, ok, number := seconds(v); number {
		return d, ok
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, false
	}
	return clamp(float64(d)), true
}

// seconds parses v as a number of seconds (fractions accepted). number
// reports that v was a number (or empty), so the caller need not try its
// other forms; ok, that it was a usable delay.
func seconds(v string) (d time.Duration, ok, number bool) {
	if v == "" {
		return 0, false, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, false, false
	}
	if f <= 0 || f != f {
		return 0, false, true
	}
	d, ok = positive(clamp(f * float64(time.Second)))
	return d, ok, true
}

func clamp(ns float64) time.Duration {
	if ns > float64(maxDelay) {
		return maxDelay
	}
	return time.Duration(ns)
}
