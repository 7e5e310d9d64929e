package retry

import (
	"net/http"
	"testing"
	"time"
)

func TestAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"none", nil, 0, false},
		{"retry-after-ms", map[string]string{"retry-after-ms": "1500"}, 1500 * time.Millisecond, true},
		{"retry-after-ms fraction", map[string]string{"retry-after-ms": "12.5"}, 12500 * time.Microsecond, true},
		{"x-ms-retry-after-ms", map[string]string{"x-ms-retry-after-ms": "250"}, 250 * time.Millisecond, true},
		{"ms wins over seconds", map[string]string{"retry-after-ms": "900", "retry-after": "1"}, 900 * time.Millisecond, true},
		{"retry-after seconds", map[string]string{"Retry-After": "12"}, 12 * time.Second, true},
		{"retry-after date", map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, 7 * time.Second, true},
		{"retry-after past date", map[string]string{"Retry-After": now.Add(-7 * time.Second).Format(http.TimeFormat)}, 0, false},
		{"retry-after zero is unknown", map[string]string{"Retry-After": "0"}, 0, false},
		{"retry-after -1 is unknown", map[string]string{"retry-after-ms": "-1"}, 0, false},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"reset go duration", map[string]string{"x-ratelimit-reset-tokens": "6m0s"}, 6 * time.Minute, true},
		{"reset ms", map[string]string{"x-ratelimit-reset-requests": "250ms"}, 250 * time.Millisecond, true},
		{"reset seconds", map[string]string{"x-ratelimit-reset-tokens": "3"}, 3 * time.Second, true},
		{"reset longest", map[string]string{"x-ratelimit-reset-tokens": "3s", "x-ratelimit-reset-requests": "1s"}, 3 * time.Second, true},
		{"reset of exhausted limit", map[string]string{"x-ratelimit-reset-tokens": "3s", "x-ratelimit-reset-requests": "1s", "x-ratelimit-remaining-requests": "0"}, time.Second, true},
		{"huge clamped", map[string]string{"Retry-After": "99999999999"}, maxDelay, true},
		{"NaN", map[string]string{"retry-after-ms": "NaN"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			got, ok := After(h, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("After = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzAfter(f *testing.F) {
	for _, s := range []string{"1500", "12", "0", "-1", "6m0s", "250ms", "Wed, 21 Oct 2026 07:28:00 GMT", "1e308", "NaN", "Inf", ""} {
		f.Add(s)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms", "Retry-After", "x-ratelimit-reset-tokens"} {
			h := http.Header{}
			h.Set(name, v)
			d, ok := After(h, now)
			if d < 0 || d > maxDelay || (!ok && d != 0) {
				t.Fatalf("%s: %q → %v, %v", name, v, d, ok)
			}
		}
	})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := map[int]Class{200: Success, 201: Success, 429: RateLimited, 500: Transient, 503: Transient,
		408: Transient, 401: Auth, 403: Auth, 400: CallerFault, 404: CallerFault, 413: CallerFault, 302: Redirect}
	for status, want := range tests {
		if got := Classify(status); got != want {
			t.Errorf("Classify(%d) = %v, want %v", status, got, want)
		}
	}
	if !RateLimited.Retryable() || !Transient.Retryable() || CallerFault.Retryable() || Success.Retryable() {
		t.Error("Retryable: wrong set")
	}
}

func TestDelayByClass(t *testing.T) {
	now := time.Now()
	reset := http.Header{}
	reset.Set("X-Ratelimit-Reset-Requests", "6m0s")
	reset.Set("X-Ratelimit-Remaining-Requests", "99")
	explicit := http.Header{}
	explicit.Set("Retry-After", "7")
	for _, tc := range []struct {
		class Class
		h     http.Header
		want  time.Duration
		ok    bool
	}{
		{RateLimited, reset, 6 * time.Minute, true}, // a 429: the longest reset is safe
		{RateLimited, explicit, 7 * time.Second, true},
		{Transient, reset, 0, false}, // a 500's routine reset headers say nothing
		{Transient, explicit, 7 * time.Second, true},
		{CallerFault, explicit, 0, false},
		{CallerFault, reset, 0, false},
		{Success, explicit, 0, false},
		{Auth, explicit, 0, false},
		{Redirect, explicit, 0, false},
	} {
		d, ok := Delay(tc.class, tc.h, now)
		if d != tc.want || ok != tc.ok {
			t.Errorf("Delay(%v, %v) = %v, %v; want %v, %v", tc.class, tc.h, d, ok, tc.want, tc.ok)
		}
	}
}
