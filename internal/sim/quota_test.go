package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
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
// Chat requests without max_tokens, of varied prompts and answer lengths:
// the tokens their answers report stay within TPM over every minute (they
// are charged the length their answer will have), and near it.
func TestTPMHoldsByUsageWithoutMaxTokens(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const tpm = 3000
	s := New(Options{TPM: tpm, Now: clock.Now, Seed: 7})
	start := clock.Now()
	perMinute := make([]int64, 3)
	for i := 0; clock.Now().Sub(start) < 3*time.Minute; i++ {
		res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody(fmt.Sprintf("question number %d", i), 0, false), nil)
		switch res.Code {
		case http.StatusOK:
			perMinute[int(clock.Now().Sub(start)/time.Minute)] += usageOf(t, res.Body.String())
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("status: got %d, want 200 or 429; body %s", res.Code, res.Body)
		}
		clock.Advance(250 * time.Millisecond)
	}
	for m, got := range perMinute {
		if got > tpm || got < tpm*9/10 {
			t.Errorf("minute %d: answers reported %d tokens, want within 10%% of %d and never over", m, got, tpm)
		}
	}
}

// usageOf returns total_tokens of a plain answer.
func usageOf(t *testing.T, body string) int64 {
	t.Helper()
	var r struct {
		Usage struct {
			Total int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer: %v: %s", err, body)
	}
	return r.Usage.Total
}

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

// TestRequestLargerThanTPMIsNeverAdmitted: a request whose estimate alone exceeds TPM gets a
// 429 that says so, x-should-retry: false, and retry headers telling when the whole window is
// free again, after which (and not before) a request of a full window's tokens is admitted.
func TestRequestLargerThanTPMIsNeverAdmitted(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	// "x": 3 + 4 + 1 = 8 prompt tokens.
	const tpm = 1000
	s := New(Options{TPM: tpm, Now: clock.Now})
	tooLarge := chatBody("x", 1500, false)
	check := func(wantMS int64) {
		t.Helper()
		res := serve(t, s, http.MethodPost, chatPath("dep"), tooLarge, nil)
		if res.Code != http.StatusTooManyRequests {
			t.Fatalf("status: got %d, want 429", res.Code)
		}
		if got := res.Header().Get("x-should-retry"); got != "false" {
			t.Errorf("x-should-retry: got %q, want false", got)
		}
		if !strings.Contains(res.Body.String(), "can never be admitted") {
			t.Errorf("body: got %s", res.Body)
		}
		if got := headerInt(t, res.Header(), "retry-after-ms"); got != wantMS {
			t.Errorf("retry-after-ms: got %d, want %d", got, wantMS)
		}
		if got, want := headerInt(t, res.Header(), "retry-after"), max((wantMS+999)/1000, 1); got != want {
			t.Errorf("retry-after: got %d, want %d", got, want)
		}
	}
	check(1) // the window is empty: it is whole at once

	for _, maxTokens := range []int{92, 192} { // 100 and 200 tokens, 10 s apart
		if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", maxTokens, false), nil); res.Code != 200 {
			t.Fatalf("filling the window: got %d", res.Code)
		}
		clock.Advance(10 * time.Second)
	}
	clock.Advance(2500 * time.Millisecond)
	// The last admission, 12.5 s ago, leaves the window 47.5 s from now.
	check(47500)
	full := chatBody("x", tpm-8, false)
	clock.Advance(47499 * time.Millisecond)
	if res := serve(t, s, http.MethodPost, chatPath("dep"), full, nil); res.Code != http.StatusTooManyRequests {
		t.Fatalf("a full window's request 1 ms before retry-after-ms: got %d, want 429", res.Code)
	}
	clock.Advance(time.Millisecond)
	if res := serve(t, s, http.MethodPost, chatPath("dep"), full, nil); res.Code != http.StatusOK {
		t.Fatalf("a full window's request at retry-after-ms: got %d, want 200; body %s", res.Code, res.Body)
	}
}

// checkRateHeaders fails unless h carries the limit and remaining headers of both dimensions,
// consistent with the limits tpm and rpm (0: unlimited, reported as unlimitedQuota).
func checkRateHeaders(t *testing.T, h http.Header, tpm, rpm int64) {
	t.Helper()
	for _, dim := range []struct {
		name  string
		limit int64
	}{{"tokens", tpm}, {"requests", rpm}} {
		for _, kind := range []string{"limit", "remaining"} {
			if h.Get("x-ratelimit-"+kind+"-"+dim.name) == "" {
				t.Fatalf("x-ratelimit-%s-%s: missing in %v", kind, dim.name, h)
			}
		}
		limit := headerInt(t, h, "x-ratelimit-limit-"+dim.name)
		remaining := headerInt(t, h, "x-ratelimit-remaining-"+dim.name)
		if dim.limit == 0 {
			if limit != unlimitedQuota || remaining != unlimitedQuota {
				t.Errorf("unlimited %s: got limit %d, remaining %d, want both %d", dim.name, limit, remaining, unlimitedQuota)
			}
			continue
		}
		if limit != dim.limit || remaining < 0 || remaining > limit {
			t.Errorf("%s: got limit %d, remaining %d, want limit %d and 0 ≤ remaining ≤ limit", dim.name, limit, remaining, dim.limit)
		}
	}
}

// TestEveryAnswerCarriesRateHeaders: every answer of the API routes (success and error, plain
// and streamed, Azure and /v1 paths, injected faults and throttling) carries the limit and
// remaining headers of both dimensions, whether the quota sets them or not.
func TestEveryAnswerCarriesRateHeaders(t *testing.T) {
	t.Parallel()
	v1 := func(body string) string { return `{"model":"dep",` + body[1:] }
	cases := []struct {
		name, method, target, body string
		header                     http.Header
		faults                     Faults
		outage                     bool
		status                     int
	}{
		{name: "azure chat", target: chatPath("dep"), body: chatBody("hi", 5, false), status: 200},
		{name: "azure chat stream", target: chatPath("dep"), body: chatBody("hi", 5, true), status: 200},
		{name: "v1 chat", target: "/v1/chat/completions", body: v1(chatBody("hi", 5, false)), status: 200},
		{name: "openai/v1 chat stream", target: "/openai/v1/chat/completions", body: v1(chatBody("hi", 5, true)), status: 200},
		{name: "v1 completions stream", target: "/v1/completions", body: `{"model":"dep","prompt":"hi","max_tokens":3,"stream":true}`, status: 200},
		{name: "embeddings", target: "/v1/embeddings", body: `{"model":"dep","input":"hi"}`, status: 200},
		{name: "images", target: "/v1/images/generations", body: `{"model":"dep","prompt":"cat"}`, status: 200},
		{name: "models", method: "GET", target: "/v1/models", status: 200},
		{name: "content filter", target: chatPath("dep"), body: chatBody("[[content_filter]]", 5, false), status: 400},
		{name: "bad body", target: chatPath("dep"), body: `{"messages":`, status: 400},
		{name: "v1 without model", target: "/v1/chat/completions", body: chatBody("hi", 5, false), status: 400},
		{name: "bad api-version", target: "/openai/deployments/dep/chat/completions?api-version=x", body: chatBody("hi", 5, false), status: 400},
		{name: "missing api-version", target: "/openai/deployments/dep/chat/completions", body: chatBody("hi", 5, false), status: 404},
		{name: "bad deployment", target: chatPath("d%20d"), body: chatBody("hi", 5, false), status: 404},
		{name: "unknown route", target: "/v1/nothing", body: "{}", status: 404},
		{name: "wrong method", method: "GET", target: chatPath("dep"), status: 405},
		{name: "wrong key", target: chatPath("dep"), body: chatBody("hi", 5, false), header: http.Header{"Api-Key": {"nope"}}, status: 401},
		{name: "auth_break", target: "/v1/chat/completions", body: v1(chatBody("hi", 5, false)), faults: Faults{AuthBreak: true}, status: 401},
		{name: "fail_500", target: chatPath("dep"), body: chatBody("hi", 5, false), faults: Faults{Fail500: 1}, status: 500},
		{name: "fail_503 stream", target: chatPath("dep"), body: chatBody("hi", 5, true), faults: Faults{Fail503: 1}, status: 503},
		{name: "fail_429", target: chatPath("dep"), body: chatBody("hi", 5, false), faults: Faults{Fail429: 1}, status: 429},
		{name: "error_event", target: chatPath("dep"), body: chatBody("hi", 5, true), faults: Faults{ErrorEvent: 1}, status: 200},
		{name: "outage azure", target: chatPath("dep"), body: chatBody("hi", 5, false), outage: true, status: 503},
		{name: "outage v1", target: "/v1/chat/completions", body: v1(chatBody("hi", 5, false)), outage: true, status: 503},
	}
	for _, q := range []struct {
		name     string
		tpm, rpm int64
	}{{"unlimited", 0, 0}, {"tpm only", 1000, 0}, {"rpm only", 0, 5}, {"both", 1000, 5}} {
		t.Run(q.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					s := New(Options{Key: testKey, TPM: int(q.tpm), RPM: int(q.rpm), Faults: tc.faults})
					if tc.outage {
						s.StartOutage(time.Minute)
					}
					header := tc.header
					if header == nil {
						header = http.Header{"Api-Key": {testKey}}
					}
					method := cmp.Or(tc.method, http.MethodPost)
					res := serve(t, s, method, tc.target, tc.body, header)
					if res.Code != tc.status {
						t.Fatalf("status: got %d, want %d; body %s", res.Code, tc.status, res.Body)
					}
					checkRateHeaders(t, res.Result().Header, q.tpm, q.rpm) // as sent with the status
				})
			}
			if q.tpm == 0 && q.rpm == 0 {
				return
			}
			t.Run("over quota", func(t *testing.T) {
				s := New(Options{TPM: int(q.tpm), RPM: int(q.rpm)})
				for range 20 { // 200 tokens a request: at most 5 fit in either quota
					res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", 192, false), nil)
					checkRateHeaders(t, res.Result().Header, q.tpm, q.rpm)
					if res.Code == http.StatusTooManyRequests {
						return
					}
				}
				t.Fatal("no request throttled")
			})
			if q.tpm > 0 {
				t.Run("never fits", func(t *testing.T) {
					s := New(Options{TPM: int(q.tpm), RPM: int(q.rpm)})
					res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", 2000, false), nil)
					if res.Code != http.StatusTooManyRequests {
						t.Fatalf("status: got %d, want 429", res.Code)
					}
					checkRateHeaders(t, res.Result().Header, q.tpm, q.rpm)
				})
			}
		})
	}
}

// TestUnlimitedDimensionNeverDecreases: the dimension without a limit reports the same fixed
// quota on every answer while the limited one counts down.
func TestUnlimitedDimensionNeverDecreases(t *testing.T) {
	t.Parallel()
	s := New(Options{TPM: 1000})
	for i := range 5 {
		res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", 92, false), nil)
		h := res.Header()
		if got := headerInt(t, h, "x-ratelimit-remaining-tokens"); got != int64(900-100*i) {
			t.Errorf("%d: remaining tokens: got %d, want %d", i, got, 900-100*i)
		}
		if got := headerInt(t, h, "x-ratelimit-remaining-requests"); got != unlimitedQuota {
			t.Errorf("%d: remaining requests: got %d, want %d", i, got, unlimitedQuota)
		}
	}
	s = New(Options{RPM: 100})
	for i := range 5 {
		res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("x", 2000, false), nil)
		h := res.Header()
		if got := headerInt(t, h, "x-ratelimit-remaining-requests"); got != int64(99-i) {
			t.Errorf("%d: remaining requests: got %d, want %d", i, got, 99-i)
		}
		if got := headerInt(t, h, "x-ratelimit-remaining-tokens"); got != unlimitedQuota {
			t.Errorf("%d: remaining tokens: got %d, want %d", i, got, unlimitedQuota)
		}
	}
}

// TestRateHeadersBeforeAdmission: an answer given before admission reports the quota of the
// deployment the request names, a deployment's full quota if nothing was charged to it, and,
// when the request names no deployment (yet), the least any deployment has left.
func TestRateHeadersBeforeAdmission(t *testing.T) {
	t.Parallel()
	s := New(Options{Key: testKey, TPM: 1000})
	good := http.Header{"Api-Key": {testKey}}
	if res := serve(t, s, http.MethodPost, chatPath("a"), chatBody("x", 892, false), good); res.Code != 200 {
		t.Fatalf("charging 900 tokens to a: got %d", res.Code)
	}
	check := func(name, method, target, body string, header http.Header, want int64) {
		t.Helper()
		res := serve(t, s, method, target, body, header)
		if got := headerInt(t, res.Header(), "x-ratelimit-remaining-tokens"); got != want {
			t.Errorf("%s (%d): remaining tokens: got %d, want %d", name, res.Code, got, want)
		}
	}
	body := chatBody("hi", 5, false)
	check("wrong key for a", "POST", chatPath("a"), body, nil, 100)
	check("wrong key for b", "POST", chatPath("b"), body, nil, 1000)
	check("bad api-version for a", "POST", "/openai/deployments/a/chat/completions?api-version=x", body, good, 100)
	check("v1 body naming b", "POST", "/v1/chat/completions", `{"model":"b","messages":`, good, 100)
	check("v1 content filter for b", "POST", "/v1/chat/completions",
		`{"model":"b","messages":[{"role":"user","content":"[[content_filter]]"}]}`, good, 1000)
	check("models", "GET", "/v1/models", "", good, 100)
	s.StartOutage(time.Minute)
	check("outage for b", "POST", chatPath("b"), body, good, 1000)
	check("outage on v1", "POST", "/v1/chat/completions", `{"model":"b"}`, good, 100)
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
