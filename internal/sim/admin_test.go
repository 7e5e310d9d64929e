package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAdminChangesFaultsAtRunTime(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := New(Options{Key: testKey, Now: clock.Now})
	ts := newHTTPServer(t, s)
	client := ts.Client()

	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("api-key", testKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	chat := func() int {
		code, _ := do("POST", chatPath("dep"), chatBody("hi", 0, false))
		return code
	}

	if code, body := do("GET", "/sim/faults", ""); code != 200 || !strings.Contains(body, `"fail_500":0`) {
		t.Fatalf("GET faults: got %d %s", code, body)
	}
	if got := chat(); got != 200 {
		t.Fatalf("before: got %d, want 200", got)
	}
	if code, body := do("PUT", "/sim/faults", `{"fail_500":1,"slow_headers_delay":"10ms"}`); code != 200 {
		t.Fatalf("PUT faults: got %d %s", code, body)
	}
	if got := s.Faults(); got.Fail500 != 1 || got.SlowHeadersDelay != 10*time.Millisecond {
		t.Errorf("Faults(): got %+v", got)
	}
	if got := chat(); got != 500 {
		t.Errorf("after PUT: got %d, want 500", got)
	}
	if code, _ := do("POST", "/sim/faults", `{"fail_503":1}`); code != 200 {
		t.Fatalf("POST faults: got %d", code)
	}
	if got := chat(); got != 503 {
		t.Errorf("after POST: got %d, want 503", got)
	}
	for _, bad := range []string{`{"fail_500":2}`, `{"fail_5000":1}`, `{"retry_after_429":true}`,
		`{"retry_after_429":"5 minutes"}`, `{"slow_headers_delay":1e300}`, `{"slow_headers_delay":null}`, `nope`} {
		if code, body := do("PUT", "/sim/faults", bad); code != 400 {
			t.Errorf("PUT %s: got %d %s, want 400", bad, code, body)
		}
	}
	if code, _ := do("DELETE", "/sim/faults", ""); code != 200 {
		t.Fatalf("DELETE faults: got %d", code)
	}
	if got := chat(); got != 200 {
		t.Errorf("after DELETE: got %d, want 200", got)
	}

	if code, body := do("POST", "/sim/outage?for=10s", ""); code != 200 || !strings.Contains(body, `"10s"`) {
		t.Fatalf("POST outage: got %d %s", code, body)
	}
	if got := chat(); got != 503 {
		t.Errorf("during outage: got %d, want 503", got)
	}
	if code, body := do("GET", "/sim/faults", ""); code != 200 {
		t.Errorf("admin during outage: got %d %s, want 200", code, body)
	}
	clock.Advance(4 * time.Second)
	if code, body := do("GET", "/sim/outage", ""); code != 200 || !strings.Contains(body, `"6s"`) {
		t.Errorf("GET outage: got %d %s", code, body)
	}
	if code, _ := do("POST", "/sim/outage?for=0s", ""); code != 200 {
		t.Errorf("end outage: got %d", code)
	}
	if got := chat(); got != 200 {
		t.Errorf("after outage: got %d, want 200", got)
	}
	if code, _ := do("POST", "/sim/outage?for=soon", ""); code != 400 {
		t.Errorf("bad outage: got %d, want 400", code)
	}

	code, body := do("GET", "/sim/stats", "")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("stats: got %d %s: %v", code, body, err)
	}
	if st.Requests != 6 || st.ByStatus[200] != 3 || st.ByStatus[500] != 1 || st.ByStatus[503] != 2 ||
		st.Faults["fail_500"] != 1 || st.Faults["outage"] != 1 {
		t.Errorf("stats: got %+v", st)
	}
	if code, _ := do("PATCH", "/sim/faults", "{}"); code != 405 {
		t.Errorf("PATCH: got %d, want 405", code)
	}
	if code, _ := do("GET", "/sim/nothing", ""); code != 404 {
		t.Errorf("unknown admin route: got %d, want 404", code)
	}
}

// TestAdminFaultsReportWhatIsInEffect: a PUT names the faults to inject (a
// rate or switch left out is off), a delay it leaves out keeps its value,
// DELETE turns the faults off and keeps the delays, and GET always shows
// the delays the answers use, never a zero standing for a default.
func TestAdminFaultsReportWhatIsInEffect(t *testing.T) {
	t.Parallel()
	s := New(Options{Faults: Faults{Fail500: 0.5, RetryAfter429: 5 * time.Second}})
	get := func() Faults {
		t.Helper()
		res := serve(t, s, http.MethodGet, "/sim/faults", "", nil)
		var f Faults
		if err := json.Unmarshal(res.Body.Bytes(), &f); err != nil || res.Code != 200 {
			t.Fatalf("GET /sim/faults: got %d %s", res.Code, res.Body)
		}
		return f
	}
	retryAfter := func() string {
		t.Helper()
		res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil)
		if res.Code != 429 {
			t.Fatalf("chat with fail_429 1: got %d, want 429", res.Code)
		}
		return res.Header().Get("Retry-After")
	}
	if f := get(); f.RetryAfter429 != 5*time.Second || f.SlowHeadersDelay != 2*time.Second {
		t.Errorf("GET at start: got retry_after_429 %v, slow_headers_delay %v; want 5s, 2s", f.RetryAfter429, f.SlowHeadersDelay)
	}
	if res := serve(t, s, http.MethodPut, "/sim/faults", `{"fail_429":1}`, nil); res.Code != 200 || !strings.Contains(res.Body.String(), `"retry_after_429":"5s"`) {
		t.Fatalf(`PUT {"fail_429":1}: got %d %s, want 200 with retry_after_429 5s`, res.Code, res.Body)
	}
	if f := get(); f.Fail429 != 1 || f.Fail500 != 0 || f.RetryAfter429 != 5*time.Second {
		t.Errorf("GET after the PUT: got %+v, want fail_429 1, fail_500 0 (replaced), retry_after_429 5s (kept)", f)
	}
	if got := retryAfter(); got != "5" {
		t.Errorf("Retry-After of an injected 429: got %q, want 5, as GET says", got)
	}
	serve(t, s, http.MethodPut, "/sim/faults", `{"fail_429":1,"retry_after_429":0}`, nil)
	if f, got := get(), retryAfter(); f.RetryAfter429 != time.Second || got != "1" {
		t.Errorf("retry_after_429 0 (the default): GET %v, Retry-After %q; want 1s and 1", f.RetryAfter429, got)
	}
	serve(t, s, http.MethodPut, "/sim/faults", `{"retry_after_429":"7s","slow_headers_delay":"3s"}`, nil)
	if res := serve(t, s, http.MethodDelete, "/sim/faults", "", nil); res.Code != 200 || !strings.Contains(res.Body.String(), `"retry_after_429":"7s"`) {
		t.Errorf("DELETE: got %d %s, want the delays kept", res.Code, res.Body)
	}
	if f := get(); f.Fail429 != 0 || f.RetryAfter429 != 7*time.Second || f.SlowHeadersDelay != 3*time.Second {
		t.Errorf("GET after DELETE: got %+v, want no fault, retry_after_429 7s, slow_headers_delay 3s", f)
	}
	serve(t, s, http.MethodPut, "/sim/faults", `{"fail_429":1}`, nil)
	if got := retryAfter(); got != "7" {
		t.Errorf("Retry-After after DELETE and PUT: got %q, want 7", got)
	}
	if res := serve(t, s, http.MethodPut, "/sim/faults", `{"fail_429":2,"retry_after_429":"9s"}`, nil); res.Code != 400 {
		t.Errorf("invalid PUT: got %d, want 400", res.Code)
	}
	if f := get(); f.Fail429 != 1 || f.RetryAfter429 != 7*time.Second {
		t.Errorf("GET after an invalid PUT: got %+v, want it unchanged", f)
	}
}

// TestAdminTakesSecondsAsSpans: the outage length and the fault delays take a plain number of
// seconds (integer or fraction) as well as a Go duration.
func TestAdminTakesSecondsAsSpans(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	for _, tc := range []struct {
		query, want string
		status      int
	}{
		{"10", "10s", 200},
		{"1.5", "1.5s", 200},
		{".25", "250ms", 200},
		{"90s", "1m30s", 200},
		{"1m30s", "1m30s", 200},
		{"0", "0s", 200},
		{"-1", "", 400},
		{"-1s", "", 400},
		{"1e3", "", 400},
		{"ten", "", 400},
		{"", "", 400},
		{"99999999999", "", 400},
	} {
		res := serve(t, s, http.MethodPost, "/sim/outage?for="+tc.query, "", nil)
		if res.Code != tc.status {
			t.Errorf("for=%s: got %d %s, want %d", tc.query, res.Code, res.Body, tc.status)
			continue
		}
		if tc.status == 200 && !strings.Contains(res.Body.String(), `"remaining":"`+tc.want+`"`) {
			t.Errorf("for=%s: got %s, want remaining %s", tc.query, res.Body, tc.want)
		}
	}
	if res := serve(t, s, http.MethodPost, "/sim/outage?for=2", "", nil); res.Code != 200 {
		t.Fatalf("for=2: got %d", res.Code)
	}
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil); res.Code != 503 {
		t.Errorf("during a 2 s outage: got %d, want 503", res.Code)
	}
	clock.Advance(2 * time.Second)
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil); res.Code != 200 {
		t.Errorf("2 s later: got %d, want 200", res.Code)
	}

	for _, tc := range []struct {
		body                  string
		retryAfter, slowDelay time.Duration
	}{
		{`{"retry_after_429":5,"slow_headers_delay":0.25}`, 5 * time.Second, 250 * time.Millisecond},
		{`{"retry_after_429":"5","slow_headers_delay":"0.25"}`, 5 * time.Second, 250 * time.Millisecond},
		{`{"retry_after_429":"1m","slow_headers_delay":"250ms"}`, time.Minute, 250 * time.Millisecond},
		{`{"retry_after_429":-1}`, -time.Second, 250 * time.Millisecond}, // a delay left out keeps its value
		{`{"slow_headers_delay":0}`, -time.Second, 2 * time.Second},      // zero: the default, reported as such
	} {
		res := serve(t, s, http.MethodPut, "/sim/faults", tc.body, nil)
		if res.Code != 200 {
			t.Errorf("PUT %s: got %d %s", tc.body, res.Code, res.Body)
			continue
		}
		if f := s.Faults(); f.RetryAfter429 != tc.retryAfter || f.SlowHeadersDelay != tc.slowDelay {
			t.Errorf("PUT %s: got retry_after_429 %v, slow_headers_delay %v; want %v, %v",
				tc.body, f.RetryAfter429, f.SlowHeadersDelay, tc.retryAfter, tc.slowDelay)
		}
	}
}
