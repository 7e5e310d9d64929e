package sim

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// admittedAt is one admission seen by a test: when and how many tokens.
type admittedAt struct {
	at     time.Time
	tokens int64
}

// checkSlidingWindow fails if any window of length win holds more than limit tokens
// (or requests, when count is true).
func checkSlidingWindow(t *testing.T, log []admittedAt, win time.Duration, limit int64, count bool) {
	t.Helper()
	lo := 0
	var sum int64
	for hi := range log {
		if count {
			sum++
		} else {
			sum += log[hi].tokens
		}
		for log[hi].at.Sub(log[lo].at) >= win {
			if count {
				sum--
			} else {
				sum -= log[lo].tokens
			}
			lo++
		}
		if sum > limit {
			t.Fatalf("window ending at %v holds %d, limit %d", log[hi].at, sum, limit)
		}
	}
}

func TestTPMQuotaHoldsOverThreeMinutes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const tpm = 10000
	s := New(Options{TPM: tpm, Now: clock.Now})
	// "hello world": 3 + 4 + ⌈11/4⌉ = 10 prompt tokens, + 90 max_tokens = 100 per request.
	body := chatBody("hello world", 90, false)
	start := clock.Now()
	var log []admittedAt
	perMinute := make([]int64, 3)
	throttled := 0
	for clock.Now().Sub(start) < 3*time.Minute {
		res := serve(t, s, http.MethodPost, chatPath("dep"), body, nil)
		switch res.Code {
		case http.StatusOK:
			log = append(log, admittedAt{clock.Now(), 100})
			perMinute[int(clock.Now().Sub(start)/time.Minute)] += 100
		case http.StatusTooManyRequests:
			throttled++
			if res.Header().Get("retry-after-ms") == "" {
				t.Fatalf("429 without retry-after-ms: %v", res.Header())
			}
		default:
			t.Fatalf("status: got %d, want 200 or 429; body %s", res.Code, res.Body)
		}
		clock.Advance(250 * time.Millisecond) // 24000 tokens per minute offered
	}
	if throttled == 0 {
		t.Fatal("no request throttled, want the offered load to exceed the quota")
	}
	for m, got := range perMinute {
		if got > tpm || got < tpm*9/10 {
			t.Errorf("minute %d: admitted %d tokens, want within 10%% of %d", m, got, tpm)
		}
	}
	checkSlidingWindow(t, log, time.Minute, tpm, false)
	if got, want := s.Stats().TokensAdmitted, uint64(len(log)*100); got != want {
		t.Errorf("Stats().TokensAdmitted: got %d, want %d", got, want)
	}
}

// TestRetryAfterIsTruthful sends requests of random sizes at random times; after each 429 the
// same request must still be refused 1 ms before retry-after-ms and admitted exactly at it.
func TestRetryAfterIsTruthful(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tpm, rpm int
	}{
		{"tokens", 5000, 0},
		{"requests", 0, 20},
		{"both", 3000, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			s := New(Options{TPM: tc.tpm, RPM: tc.rpm, Now: clock.Now})
			r := rand.New(rand.NewPCG(1, 2))
			checked := 0
			for range 600 {
				clock.Advance(time.Duration(r.IntN(3000)) * time.Millisecond)
				body := chatBody("truthful retry-after", 1+r.IntN(400), false)
				res := serve(t, s, http.MethodPost, chatPath("dep"), body, nil)
				if res.Code == http.StatusOK {
					continue
				}
				if res.Code != http.StatusTooManyRequests {
					t.Fatalf("status: got %d, want 200 or 429", res.Code)
				}
				ms := headerInt(t, res.Header(), "retry-after-ms")
				secs := headerInt(t, res.Header(), "retry-after")
				if want := (ms + 999) / 1000; secs != want {
					t.Fatalf("retry-after: got %d, want %d (retry-after-ms %d)", secs, want, ms)
				}
				if !strings.Contains(res.Body.String(), "Please retry after "+strconv.FormatInt(secs, 10)+" second") {
					t.Fatalf("body %s does not say retry after %d seconds", res.Body, secs)
				}
				if ms > 1 {
					clock.Advance(time.Duration(ms-1) * time.Millisecond)
					if early := serve(t, s, http.MethodPost, chatPath("dep"), body, nil); early.Code != http.StatusTooManyRequests {
						t.Fatalf("1ms before retry-after-ms %d: got %d, want 429", ms, early.Code)
					}
					clock.Advance(time.Millisecond)
				} else {
					clock.Advance(time.Duration(ms) * time.Millisecond)
				}
				if on := serve(t, s, http.MethodPost, chatPath("dep"), body, nil); on.Code != http.StatusOK {
					t.Fatalf("after retry-after-ms %d: got %d, want 200; body %s", ms, on.Code, on.Body)
				}
				checked++
			}
			if checked < 50 {
				t.Fatalf("checked %d throttled requests, want at least 50", checked)
			}
		})
	}
}

func TestRPMQuotaHoldsOverThreeMinutes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const rpm = 30
	s := New(Options{RPM: rpm, Now: clock.Now})
	start := clock.Now()
	var log []admittedAt
	perMinute := make([]int64, 3)
	for clock.Now().Sub(start) < 3*time.Minute {
		res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil)
		switch res.Code {
		case http.StatusOK:
			log = append(log, admittedAt{at: clock.Now()})
			perMinute[int(clock.Now().Sub(start)/time.Minute)]++
			if got := headerInt(t, res.Header(), "x-ratelimit-limit-requests"); got != rpm {
				t.Fatalf("x-ratelimit-limit-requests: got %d, want %d", got, rpm)
			}
		case http.StatusTooManyRequests:
			if !strings.Contains(res.Body.String(), "call rate limit") {
				t.Fatalf("429 body: got %s, want call rate limit", res.Body)
			}
		default:
			t.Fatalf("status: got %d", res.Code)
		}
		clock.Advance(700 * time.Millisecond)
	}
	for m, got := range perMinute {
		if got > rpm || got < rpm*9/10 {
			t.Errorf("minute %d: admitted %d requests, want within 10%% of %d", m, got, rpm)
		}
	}
	checkSlidingWindow(t, log, time.Minute, rpm, true)
}

func TestQuotaIsPerDeploymentAndHeaders(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := New(Options{TPM: 1000, RPM: 2, Now: clock.Now})
	for i, tc := range []struct {
		dep           string
		status        int
		reqs, tokens  int64
		retryAfterSet bool
	}{
		{"a", 200, 1, 900, false},
		{"a", 200, 0, 800, false},
		{"a", 429, 0, 800, true},
		{"b", 200, 1, 900, false},
	} {
		res := serve(t, s, http.MethodPost, chatPath(tc.dep), chatBody("hello world", 90, false), nil)
		h := res.Header()
		if res.Code != tc.status {
			t.Fatalf("%d: status: got %d, want %d", i, res.Code, tc.status)
		}
		if got := headerInt(t, h, "x-ratelimit-remaining-requests"); got != tc.reqs {
			t.Errorf("%d: remaining requests: got %d, want %d", i, got, tc.reqs)
		}
		if got := headerInt(t, h, "x-ratelimit-remaining-tokens"); got != tc.tokens {
			t.Errorf("%d: remaining tokens: got %d, want %d", i, got, tc.tokens)
		}
		if got := headerInt(t, h, "x-ratelimit-limit-tokens"); got != 1000 {
			t.Errorf("%d: limit tokens: got %d, want 1000", i, got)
		}
		if got := h.Get("retry-after") != ""; got != tc.retryAfterSet {
			t.Errorf("%d: retry-after set: got %v, want %v", i, got, tc.retryAfterSet)
		}
	}
}

func TestRequestLargerThanTPMIsNeverAdmitted(t *testing.T) {
	t.Parallel()
	s := New(Options{TPM: 100})
	res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", 500, false), nil)
	if res.Code != http.StatusTooManyRequests {
		t.Fatalf("status: got %d, want 429", res.Code)
	}
	if got := res.Header().Get("x-should-retry"); got != "false" {
		t.Errorf("x-should-retry: got %q, want false", got)
	}
	if got := res.Header().Get("retry-after"); got != "" {
		t.Errorf("retry-after: got %q, want none", got)
	}
	if !strings.Contains(res.Body.String(), "can never be admitted") {
		t.Errorf("body: got %s", res.Body)
	}
}

func TestNoLimitsNoRateHeaders(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", 0, false), nil)
	for _, name := range []string{"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} {
		if v := res.Header().Get(name); v != "" {
			t.Errorf("%s: got %q, want none without limits", name, v)
		}
	}
}

func TestQuotaConcurrentAdmissionsNeverExceed(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const tpm = 5000
	s := New(Options{TPM: tpm, Now: clock.Now})
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int64
	)
	for range 8 {
		wg.Go(func() {
			for range 100 {
				res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hello world", 90, false), nil)
				if res.Code == http.StatusOK {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if ok*100 != tpm {
		t.Fatalf("admitted %d tokens in one instant, want exactly %d", ok*100, tpm)
	}
}

func TestWindowCompaction(t *testing.T) {
	t.Parallel()
	q := newQuota(0, 100000, time.Minute)
	w := q.lookup("d")
	now := time.Unix(0, 0)
	for i := range 5000 {
		if d := q.admit(w, 1, now.Add(time.Duration(i)*100*time.Millisecond)); !d.admitted {
			t.Fatalf("admission %d refused", i)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if live := len(w.log) - w.head; live != 600 {
		t.Fatalf("live admissions: got %d, want 600", live)
	}
	if len(w.log) > 2*1024+600 {
		t.Fatalf("log length %d: not compacted", len(w.log))
	}
}
