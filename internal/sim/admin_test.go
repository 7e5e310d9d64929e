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
		{`{"retry_after_429":-1}`, -time.Second, 0},
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
