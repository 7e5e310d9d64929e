package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// outcome classifies what a client saw of one in-process request.
func outcome(res result) string {
	switch {
	case res.aborted && res.Header().Get("Content-Type") == "":
		return "dropped" // reset or hang
	case res.aborted:
		return "stream_cut"
	case strings.HasPrefix(res.Body.String(), `data: {"error"`):
		return "error_event"
	case res.Code == http.StatusInternalServerError:
		return "fail_500"
	case res.Code == http.StatusServiceUnavailable:
		return "fail_503"
	case res.Code == http.StatusTooManyRequests:
		return "fail_429"
	case res.Code == http.StatusOK:
		return "ok"
	default:
		return "unexpected"
	}
}

func TestFaultRates(t *testing.T) {
	t.Parallel()
	const n = 1000
	for _, tc := range []struct {
		name   string
		faults Faults
		want   string // outcome counted
	}{
		{"fail_500", Faults{Fail500: 0.2}, "fail_500"},
		{"fail_503", Faults{Fail503: 0.2}, "fail_503"},
		{"fail_429", Faults{Fail429: 0.2}, "fail_429"},
		{"reset", Faults{Reset: 0.2}, "dropped"},
		{"hang", Faults{Hang: 0.2}, "dropped"},
		{"stream_cut", Faults{StreamCut: 0.2}, "stream_cut"},
		{"error_event", Faults{ErrorEvent: 0.2}, "error_event"},
		{"slow_headers", Faults{SlowHeaders: 0.2, SlowHeadersDelay: time.Hour}, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Options{Seed: 42, Faults: tc.faults})
			s.Close() // hung requests and slow headers return at once
			counts := map[string]int{}
			for range n {
				counts[outcome(serve(t, s, http.MethodPost, chatPath("dep"), chatBody("rates", 4, true), nil))]++
			}
			got := counts[tc.want]
			if tc.name == "slow_headers" {
				got = int(s.Stats().Faults["slow_headers"])
			}
			if got < n*15/100 || got > n*25/100 {
				t.Errorf("%s: got %d of %d, want between 15%% and 25%% (outcomes %v)", tc.name, got, n, counts)
			}
			if st := s.Stats().Faults[tc.name]; int(st) != got {
				t.Errorf("Stats().Faults[%s]: got %d, want %d", tc.name, st, got)
			}
		})
	}
}

func TestFaultRatesCombined(t *testing.T) {
	t.Parallel()
	const n = 2000
	s := New(Options{Seed: 3, Faults: Faults{Fail500: 0.1, Fail503: 0.1, Fail429: 0.1, StreamCut: 0.1, ErrorEvent: 0.1}})
	counts := map[string]int{}
	for range n {
		counts[outcome(serve(t, s, http.MethodPost, chatPath("dep"), chatBody("mix", 4, true), nil))]++
	}
	for _, k := range []string{"fail_500", "fail_503", "fail_429", "stream_cut", "error_event"} {
		if got := counts[k]; got < n*7/100 || got > n*13/100 {
			t.Errorf("%s: got %d of %d, want about 10%%", k, got, n)
		}
	}
	if got := counts["ok"]; got < n*45/100 || got > n*55/100 {
		t.Errorf("ok: got %d of %d, want about 50%%", got, n)
	}
}

// volatile matches the parts of an answer that differ between runs: ids and timestamps.
var volatile = regexp.MustCompile(`"(id|created)":("[^"]*"|[0-9]+)`)

func TestFaultsReproducible(t *testing.T) {
	t.Parallel()
	f := Faults{Fail500: 0.1, Fail503: 0.1, Fail429: 0.1, Reset: 0.1, StreamCut: 0.1, ErrorEvent: 0.1}
	run := func(seed int64) []string {
		s := New(Options{Seed: seed, Faults: f})
		var seq []string
		for i := range 300 {
			res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("repro", 1+i%7, i%2 == 0), nil)
			seq = append(seq, outcome(res)+":"+volatile.ReplaceAllString(res.Body.String(), ""))
		}
		return seq
	}
	a, b, c := run(9), run(9), run(10)
	same := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d: seed 9 gave %q then %q", i, a[i], b[i])
		}
		if a[i] == c[i] {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("seeds 9 and 10 gave the same outcomes")
	}
}

// readSSE reads data lines from a streamed answer until EOF or an error.
func readSSE(body io.Reader) (events []string, err error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, data)
		}
	}
	return events, sc.Err()
}

func post(t *testing.T, client *http.Client, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return client.Do(req)
}

func TestStreamCut(t *testing.T) {
	checkGoroutines(t)
	ts := newHTTPServer(t, New(Options{Faults: Faults{StreamCut: 1}}))
	client := ts.Client()
	t.Cleanup(client.CloseIdleConnections)

	resp, err := post(t, client, ts.URL+chatPath("dep"), chatBody("[[tokens:10]]", 0, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events, err := readSSE(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error: got %v, want unexpected EOF", err)
	}
	// The Azure prompt filter chunk, then 5 of the 10 token chunks.
	if len(events) != 6 {
		t.Errorf("events: got %d, want 6: %q", len(events), events)
	}
	for _, e := range events {
		if e == "[DONE]" {
			t.Error("cut stream sent [DONE]")
		}
	}

	// The official client reports the cut as an error.
	oc := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("k"),
		option.WithMaxRetries(0), option.WithHTTPClient(client))
	stream := oc.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:    "dep",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("[[tokens:10]]")},
	})
	n := 0
	for stream.Next() {
		n++
	}
	if stream.Err() == nil || n != 5 {
		t.Errorf("client: got %d chunks and error %v, want 5 and an error", n, stream.Err())
	}

	// A non-streamed answer is cut halfway through its body.
	resp2, err := post(t, client, ts.URL+chatPath("dep"), chatBody("hi", 0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if _, err := io.ReadAll(resp2.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("non-streamed read error: got %v, want unexpected EOF", err)
	}
}

func TestErrorEvent(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Faults: Faults{ErrorEvent: 1}}))
	resp, err := post(t, ts.Client(), ts.URL+chatPath("dep"), chatBody("hi", 0, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events, err := readSSE(resp.Body)
	if err != nil || len(events) != 1 {
		t.Fatalf("events: got %q, %v; want one error event", events, err)
	}
	var body struct {
		Error struct {
			Message, Type string
		}
	}
	decode(t, []byte(events[0]), &body)
	if body.Error.Type != "server_error" || body.Error.Message == "" {
		t.Errorf("error event: got %s", events[0])
	}

	oc := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	stream := oc.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:    "dep",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	for stream.Next() {
		t.Errorf("client got a chunk: %+v", stream.Current())
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "error while streaming") {
		t.Errorf("client error: got %v, want a streaming error", err)
	}

	// Non-streamed requests are not affected.
	resp2, err := post(t, ts.Client(), ts.URL+chatPath("dep"), chatBody("hi", 0, false))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Errorf("non-streamed: got %d, want 200", resp2.StatusCode)
	}
}

func TestHang(t *testing.T) {
	checkGoroutines(t)
	s := New(Options{Faults: Faults{Hang: 1}})
	ts := newHTTPServer(t, s)
	client := ts.Client()
	t.Cleanup(client.CloseIdleConnections)

	// A client with a timeout gets its timeout and the handler returns.
	timed := &http.Client{Transport: client.Transport, Timeout: 100 * time.Millisecond}
	_, err := post(t, timed, ts.URL+chatPath("dep"), chatBody("hi", 0, false))
	var ue interface{ Timeout() bool }
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("error: got %v, want a timeout", err)
	}

	// A patient client is released by Close.
	done := make(chan error, 1)
	go func() {
		resp, err := post(t, client, ts.URL+chatPath("dep"), chatBody("hi", 0, false))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().Faults["hang"] == 2 })
	select {
	case err := <-done:
		t.Fatalf("request ended before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("hung request got an answer, want a connection error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
	waitFor(t, func() bool { return s.Stats().Aborted == 2 })
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Faults: Faults{Reset: 1}}))
	resp, err := post(t, ts.Client(), ts.URL+chatPath("dep"), chatBody("hi", 0, false))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a connection error", resp.StatusCode)
	}
}

func TestSlowHeaders(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Faults: Faults{SlowHeaders: 1, SlowHeadersDelay: 50 * time.Millisecond}}))
	start := time.Now()
	resp, err := post(t, ts.Client(), ts.URL+chatPath("dep"), chatBody("hi", 0, false))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < 50*time.Millisecond || resp.StatusCode != 200 {
		t.Errorf("got %d after %v, want 200 after at least 50ms", resp.StatusCode, d)
	}
}

func TestInjected429RetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		retryAfter time.Duration
		secs, ms   string
	}{
		{"default", 0, "1", "1000"},
		{"set", 2500 * time.Millisecond, "3", "2500"},
		{"omitted", -1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Options{Faults: Faults{Fail429: 1, RetryAfter429: tc.retryAfter}})
			res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil)
			if res.Code != 429 || res.Header().Get("retry-after") != tc.secs || res.Header().Get("retry-after-ms") != tc.ms {
				t.Errorf("got %d retry-after %q retry-after-ms %q, want 429 %q %q", res.Code,
					res.Header().Get("retry-after"), res.Header().Get("retry-after-ms"), tc.secs, tc.ms)
			}
		})
	}
}

func TestOutage(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	s.StartOutage(10 * time.Second)
	res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil)
	var body struct{ Error apiError }
	decode(t, res.Body.Bytes(), &body)
	if res.Code != 503 || body.Error.Code != "ServiceUnavailable" || res.Header().Get("retry-after") != "" {
		t.Errorf("during outage: got %d %s", res.Code, res.Body)
	}
	s.SetFaults(Faults{OutageReset: true})
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil); !res.aborted {
		t.Errorf("outage with reset: got %d, want an aborted connection", res.Code)
	}
	clock.Advance(10 * time.Second)
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil); res.Code != 200 {
		t.Errorf("after outage: got %d, want 200", res.Code)
	}
	if got := s.Stats().Faults["outage"]; got != 2 {
		t.Errorf("Stats().Faults[outage]: got %d, want 2", got)
	}
}

func TestAuthBreak(t *testing.T) {
	t.Parallel()
	s := New(Options{Key: testKey})
	hdr := http.Header{"Api-Key": {testKey}}
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), hdr); res.Code != 200 {
		t.Fatalf("before: got %d, want 200", res.Code)
	}
	s.SetFaults(Faults{AuthBreak: true})
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), hdr); res.Code != 401 {
		t.Fatalf("broken: got %d, want 401", res.Code)
	}
	s.SetFaults(Faults{})
	if res := serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), hdr); res.Code != 200 {
		t.Fatalf("restored: got %d, want 200", res.Code)
	}
}

func TestFaultsJSONAndValidate(t *testing.T) {
	t.Parallel()
	f := Faults{Fail500: 0.25, RetryAfter429: 1500 * time.Millisecond, SlowHeadersDelay: 2 * time.Second, AuthBreak: true}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"retry_after_429":"1.5s"`) || !strings.Contains(string(b), `"fail_500":0.25`) {
		t.Errorf("JSON: got %s", b)
	}
	var back Faults
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Errorf("round trip: got %+v, %v; want %+v", back, err, f)
	}
	for _, bad := range []Faults{{Fail500: 1.5}, {Hang: -0.1}, {Fail500: 0.6, Fail503: 0.6}, {SlowHeadersDelay: -time.Second}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v): got nil, want an error", bad)
		}
	}
	if err := (Faults{Fail500: 0.5, Fail503: 0.5}).Validate(); err != nil {
		t.Errorf("Validate: got %v, want nil", err)
	}
}

func TestCloseEndsLatencyWaits(t *testing.T) {
	t.Parallel()
	s := New(Options{TTFT: time.Hour})
	done := make(chan int, 1)
	go func() { done <- serve(t, s, http.MethodPost, chatPath("dep"), chatBody("hi", 0, false), nil).Code }()
	s.Close()
	select {
	case code := <-done:
		if code != 200 {
			t.Errorf("got %d, want 200 once closed", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the latency wait")
	}
}
