package drills

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/sim"
)

// chatPath is the Azure chat route the security tests call.
const chatPath = "/openai/deployments/gpt-4o/chat/completions?api-version=" + apiVersion

const chatBody = `{"messages":[{"role":"user","content":"security [[tokens:5]]"}],"max_tokens":10}`

// call sends one request to the gateway and returns the status, headers and body.
func call(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, b
}

// jsonError decodes a body in the OpenAI error shape; ok is false if it is not one.
func jsonError(b []byte) (code, typ, msg string, ok bool) {
	var e struct {
		Error struct {
			Code    any    `json:"code"`
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" {
		return "", "", "", false
	}
	return fmt.Sprint(e.Error.Code), e.Error.Type, e.Error.Message, true
}

// expectJSONError asserts an answer is status with the JSON error shape and, if code != "", that code.
func expectJSONError(t *testing.T, what string, status int, hdr http.Header, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d (body %.200s)", what, status, wantStatus, body)
		return
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	code, _, _, ok := jsonError(body)
	if !ok {
		t.Errorf("%s: body %q is not the JSON error shape", what, body)
		return
	}
	if wantCode != "" && code != wantCode {
		t.Errorf("%s: error code %q, want %q", what, code, wantCode)
	}
}

// TestSecurityClientKeyNeverReachesUpstreamOrLog: client keys, in either
// header, on every kind of request, never reach an upstream (headers,
// target or body) nor any log line; the upstream gets its own key only
// (the simulators refuse any other). Every other drill's gateway log is
// searched the same way when its test ends (checkLog).
func TestSecurityClientKeyNeverReachesUpstreamOrLog(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	o := simOptions("b")
	o.Faults = sim.Faults{Fail500: 0.3, StreamCut: 0.1} // failures and retries log more
	b := newSim(t, "b", o)
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))
	c := newClient(t, g.url)

	rs := drive(c, 120, concurrency, mixed)
	f := summarize(t.Name(), rs, 0, a, b)
	expectAllAnswered(t, f, rs)
	if f.ok() < f.n/2 {
		t.Errorf("only %d of %d requests succeeded: the upstreams did not accept their own keys", f.ok(), f.n)
	}
	// Wrong keys and the key in odd places.
	hc := c.hc
	for _, h := range []map[string]string{
		{"api-key": clientKey + "x"},
		{"Authorization": "Bearer " + clientKey + "x"},
		{"Authorization": "Basic " + clientKey},
		{"X-Api-Key": clientKey},
		{"Cookie": "api-key=" + clientKey},
	} {
		call(t, hc, http.MethodPost, g.url+chatPath, h, chatBody)
	}
	// The key also in a cookie and a Proxy-Authorization header of an authorised request.
	call(t, hc, http.MethodPost, g.url+chatPath, map[string]string{
		"api-key": clientKey, "Cookie": "session=" + clientKey, "Proxy-Authorization": "Bearer " + clientKey,
	}, chatBody)
	// ... and in API Management's credential header, the common custom one,
	// and a header of the client's own making.
	for _, h := range []map[string]string{
		{"api-key": clientKey, "Ocp-Apim-Subscription-Key": clientKey},
		{"api-key": clientKey, "X-Api-Key": clientKey},
		{"Authorization": "Bearer " + clientKey, "X-My-Auth": "Token " + clientKey},
	} {
		if status, _, body := call(t, hc, http.MethodPost, g.url+chatPath, h, chatBody); status >= 500 {
			t.Errorf("%v: status %d %s", h, status, body)
		}
	}
	expectNoLeak(t, a, b)

	t.Run("key in the query string", func(t *testing.T) {
		before := a.leaks.Load() + b.leaks.Load()
		for _, q := range []string{"&api-key=", "&subscription-key=", "&api_key=", "&foo=", "&token=Bearer%20"} {
			status, _, _ := call(t, hc, http.MethodPost, g.url+chatPath+q+url.QueryEscape(clientKey), map[string]string{"api-key": clientKey}, chatBody)
			if status != http.StatusOK {
				t.Errorf("status %d", status)
			}
		}
		if n := a.leaks.Load() + b.leaks.Load() - before; n > 0 {
			t.Fatalf("BUG: a client key a client put in the query string (api-key= or subscription-key=, API Management's query "+
				"credential) reached the upstream in %d request(s): internal/proxy/headers.go outbound passes r.URL.RawQuery "+
				"through unchanged; it should drop api-key and subscription-key query parameters as it drops the headers", n)
		}
	})
	checkLog(t, g.log) // also at cleanup; here to name this test
	if g.log.lineCount() == 0 {
		t.Error("the gateway logged nothing: the search proved nothing")
	}
	t.Logf("log lines searched so far in this run: %d (%d bytes)", logScan.lines.Load(), logScan.bytes.Load())
}

// TestSecurityMissingAndWrongKeysIndistinguishable: a missing key and
// every kind of wrong key get the same status, the same body bytes, the
// same headers, no upstream call, and the same timing profile (a wrong key
// that shares all but its last byte with the right one takes no longer).
func TestSecurityMissingAndWrongKeysIndistinguishable(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, nil))
	h := g.app.Handler()

	variants := []struct {
		name string
		hdr  map[string]string
	}{
		{"missing", nil},
		{"empty api-key", map[string]string{"api-key": ""}},
		{"wrong, same length", map[string]string{"api-key": strings.Repeat("z", len(clientKey))}},
		{"right but the last byte", map[string]string{"api-key": clientKey[:len(clientKey)-1] + "0"}},
		{"right prefix only", map[string]string{"api-key": clientKey[:8]}},
		{"longer", map[string]string{"api-key": clientKey + "0"}},
		{"wrong bearer", map[string]string{"Authorization": "Bearer " + clientKey[:len(clientKey)-1] + "0"}},
		{"bearer without token", map[string]string{"Authorization": "Bearer "}},
		{"basic", map[string]string{"Authorization": "Basic " + clientKey}},
	}
	newReq := func(hdr map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, chatPath, strings.NewReader(chatBody))
		r.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	// Status, body and headers, over the network.
	c := newClient(t, g.url)
	type answer struct {
		status int
		body   string
		keys   string
	}
	var first answer
	for i, v := range variants {
		status, hdr, body := call(t, c.hc, http.MethodPost, g.url+chatPath, v.hdr, chatBody)
		var keys []string
		for k := range hdr {
			if k != "Date" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		got := answer{status, string(body), strings.Join(keys, ",")}
		if i == 0 {
			first = got
			if status != http.StatusUnauthorized {
				t.Errorf("missing key: status %d, want 401", status)
			}
			continue
		}
		if got != first {
			t.Errorf("%s: got %+v, want the same as a missing key %+v", v.name, got, first)
		}
	}
	if n := a.received.Load(); n != 0 {
		t.Errorf("the upstream received %d requests without a valid key, want 0", n)
	}

	// Timing, in process (no network noise): interleaved rounds, medians.
	rounds := 400
	if long() {
		rounds = 3000
	}
	times := make([][]time.Duration, len(variants))
	for range 50 { // warm up
		for _, v := range variants {
			h.ServeHTTP(httptest.NewRecorder(), newReq(v.hdr))
		}
	}
	for range rounds {
		for i, v := range variants {
			r := newReq(v.hdr)
			w := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(w, r)
			times[i] = append(times[i], time.Since(start))
		}
	}
	var lo, hi time.Duration
	var report strings.Builder
	for i, v := range variants {
		m := percentile(times[i], 0.5)
		fmt.Fprintf(&report, "%s: p50 %v p90 %v; ", v.name, m, percentile(times[i], 0.9))
		if i == 0 || m < lo {
			lo = m
		}
		hi = max(hi, m)
	}
	t.Logf("timing profile (%d rounds): %s", rounds, report.String())
	if hi > lo+lo/2+5*time.Microsecond {
		t.Errorf("median time ranges from %v to %v across missing and wrong keys, want within 50 %% + 5µs", lo, hi)
	}
}

// TestSecurityUpstreamRedirectsRefused: a backend answering with a
// redirect is never followed (its Location could take the backend's key
// elsewhere): the target receives nothing, the client gets a clear 502 and
// never the Location.
func TestSecurityUpstreamRedirectsRefused(t *testing.T) {
	evil := newUpstream(t, "evil", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"stolen":true}`)
	}))
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			var seen atomic.Int64
			a := newUpstream(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen.Add(1)
				http.Redirect(w, r, evil.url+r.URL.RequestURI(), code)
			}))
			g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, nil))
			c := newClient(t, g.url)
			for _, k := range []kind{chatPlain, chatStream} {
				r := c.do(k, 0)
				if r.status != http.StatusBadGateway || r.out != errorAnswer || !r.jsonErr {
					t.Errorf("%s: status %d (%s), want a clear 502 JSON error", k, r.status, r.out)
				}
			}
			req := c.request(chatPlain, 0)
			resp, err := c.hc.Transport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("the client got the upstream's Location %q", loc)
			}
			if seen.Load() == 0 {
				t.Fatal("the redirecting backend was never called")
			}
		})
	}
	if n := evil.received.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests, want 0", n)
	}
}

// TestSecurityRequestSizeBounded: a body over max_body_bytes gets 413 in
// the JSON error shape, with or without Content-Length, and no upstream
// call; a body at the limit goes through.
func TestSecurityRequestSizeBounded(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	const limit = 4096
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, map[string]any{"max_body_bytes": limit}))
	c := newClient(t, g.url)
	body := func(n int) string {
		pre, post := `{"messages":[{"role":"user","content":"`, `"}]}`
		return pre + strings.Repeat("x", n-len(pre)-len(post)) + post
	}
	status, _, b := call(t, c.hc, http.MethodPost, g.url+chatPath, map[string]string{"api-key": clientKey}, body(limit))
	if status != http.StatusOK {
		t.Errorf("body of exactly %d bytes: status %d (%s), want 200", limit, status, b)
	}
	status, hdr, b := call(t, c.hc, http.MethodPost, g.url+chatPath, map[string]string{"api-key": clientKey}, body(2*limit))
	expectJSONError(t, "body over the limit", status, hdr, b, http.StatusRequestEntityTooLarge, "request_too_large")

	// Chunked: no Content-Length to refuse up front.
	req, _ := http.NewRequest(http.MethodPost, g.url+chatPath, io.MultiReader(strings.NewReader(body(3*limit)))) // no length known
	req.ContentLength = -1
	req.Header.Set("api-key", clientKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	expectJSONError(t, "chunked body over the limit", resp.StatusCode, resp.Header, b, http.StatusRequestEntityTooLarge, "request_too_large")
	if n := a.received.Load(); n != 1 {
		t.Errorf("the upstream received %d requests, want 1 (only the one within the limit)", n)
	}
}

// TestSecurityHeaderSizeBounded: headers over max_header_bytes get 431 in
// the JSON error shape and no upstream call.
func TestSecurityHeaderSizeBounded(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, map[string]any{"max_header_bytes": 8192}))
	c := newClient(t, g.url)
	hdr := func(extra map[string]string) map[string]string {
		extra["api-key"] = clientKey
		return extra
	}
	status, _, b := call(t, c.hc, http.MethodPost, g.url+chatPath, hdr(map[string]string{"X-Pad": strings.Repeat("p", 4000)}), chatBody)
	if status != http.StatusOK {
		t.Errorf("4 KB of headers: status %d (%s), want 200", status, b)
	}
	status, h, b := call(t, c.hc, http.MethodPost, g.url+chatPath, hdr(map[string]string{"X-Pad": strings.Repeat("p", 16000)}), chatBody)
	expectJSONError(t, "one 16 KB header", status, h, b, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large")
	many := map[string]string{}
	for i := range 200 {
		many["X-Pad-"+strconv.Itoa(i)] = strings.Repeat("p", 60)
	}
	status, h, b = call(t, c.hc, http.MethodPost, g.url+chatPath, hdr(many), chatBody)
	expectJSONError(t, "200 headers of 60 bytes", status, h, b, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large")
	// The request line counts too, as in net/http's MaxHeaderBytes: a long
	// query string is bounded like a long header.
	status, h, b = call(t, c.hc, http.MethodPost, g.url+chatPath+"&pad="+strings.Repeat("q", 100<<10), hdr(map[string]string{}), chatBody)
	expectJSONError(t, "a 100 KB query string", status, h, b, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large")
	if n := a.received.Load(); n != 1 {
		t.Errorf("the upstream received %d requests, want 1", n)
	}

	t.Run("limit above 64 KiB is honoured", func(t *testing.T) {
		g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, map[string]any{"max_header_bytes": 256 << 10}))
		c := newClient(t, g.url)
		status, _, b := call(t, c.hc, http.MethodPost, g.url+chatPath, map[string]string{"api-key": clientKey, "X-Pad": strings.Repeat("p", 100<<10)}, chatBody)
		if status == http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("BUG: with max_header_bytes: 262144, 100 KiB of headers get %d %q from net/http itself: "+
				"internal/app/app.go Server sets MaxHeaderBytes to a fixed 64<<10 instead of deriving it from cfg.MaxHeaderBytes "+
				"(e.g. cfg.MaxHeaderBytes plus slack, so the proxy's JSON 431 covers the configured bound)", status, bytes.TrimSpace(b))
		}
		if status != http.StatusOK {
			t.Errorf("100 KiB of headers under a 256 KiB limit: status %d", status)
		}
	})
}

// TestSecurityHeaderReadTimeBounded: a client that sends its headers a
// byte at a time (slowloris) is disconnected once timeouts.read_header
// passes, without an answer; while many such clients hang on, others are
// served at once.
func TestSecurityHeaderReadTimeBounded(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	const readHeader = 300 * time.Millisecond
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, map[string]any{"timeouts.read_header": "300ms"}))

	const attackers = 20
	type verdict struct {
		closedAfter time.Duration
		answered    []byte
		err         error
	}
	verdicts := make([]verdict, attackers)
	var wg sync.WaitGroup
	for i := range attackers {
		wg.Go(func() {
			conn, err := net.Dial("tcp", g.addr)
			if err != nil {
				verdicts[i].err = err
				return
			}
			defer conn.Close()
			start := time.Now()
			_, _ = io.WriteString(conn, "POST "+chatPath+" HTTP/1.1\r\nHost: gateway\r\n")
			closed := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(conn) // returns when the server closes
				closed <- b
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(5 * time.Second)
			for {
				select {
				case b := <-closed:
					verdicts[i] = verdict{closedAfter: time.Since(start), answered: b}
					return
				case <-tick.C:
					_, _ = io.WriteString(conn, "X") // one more byte of a header that never ends
				case <-deadline:
					verdicts[i].err = fmt.Errorf("still open after 5s")
					return
				}
			}
		})
	}
	// Meanwhile a normal client is served.
	time.Sleep(100 * time.Millisecond)
	c := newClient(t, g.url)
	r := c.do(chatPlain, 0)
	if r.out != okAnswer || r.latency > 500*time.Millisecond {
		t.Errorf("a normal request during the attack: %s in %v, want success at once", r.out, r.latency)
	}
	wg.Wait()
	var worst time.Duration
	for i, v := range verdicts {
		if v.err != nil {
			t.Errorf("attacker %d: %v", i, v.err)
			continue
		}
		worst = max(worst, v.closedAfter)
		if v.closedAfter < readHeader-50*time.Millisecond || v.closedAfter > readHeader+time.Second {
			t.Errorf("attacker %d: closed after %v, want about timeouts.read_header (%v)", i, v.closedAfter, readHeader)
		}
		// net/http may say why before it closes: a 400 or 408 with
		// Connection: close, never anything the gateway made.
		if len(v.answered) > 0 && !(bytes.HasPrefix(v.answered, []byte("HTTP/1.1 4")) && bytes.Contains(v.answered, []byte("Connection: close"))) {
			t.Errorf("attacker %d got %q, want the connection closed (at most with a 4xx and Connection: close)", i, v.answered)
		}
	}
	t.Logf("slowloris: %d connections each closed within %v (read_header %v); last words: %.60q", attackers, worst.Round(time.Millisecond), readHeader, verdicts[0].answered)
	if n := a.received.Load(); n != 1 {
		t.Errorf("the upstream received %d requests, want 1", n)
	}
}

// TestSecurityConcurrentStreamsPerKeyBounded: a key with max_streams: 2
// gets 429 with code too_many_streams for a third concurrent stream, while
// plain requests go on; closing a stream, whether it ended or its client
// left, frees its slot.
func TestSecurityConcurrentStreamsPerKeyBounded(t *testing.T) {
	release := make(chan struct{})
	var opened atomic.Int64
	a := newUpstream(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"chatcmpl-p","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
			return
		}
		opened.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}`+"\n\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, map[string]any{"keys.0.max_streams": 2}))
	c := newClient(t, g.url)

	// open starts a stream and returns once its first event arrived.
	open := func(i int) (*http.Response, *bufio.Reader) {
		t.Helper()
		resp, err := c.hc.Do(c.request(chatStream, i))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("stream %d: status %d %s", i, resp.StatusCode, b)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return resp, br
	}
	s1, br1 := open(1)
	s2, _ := open(2)

	r := c.do(chatStream, 3)
	if r.status != http.StatusTooManyRequests || r.errCode != "too_many_streams" || !r.jsonErr || r.retryAfter == "" {
		t.Errorf("third stream: status %d, code %q, JSON %v, retry-after %q; want 429 too_many_streams in the JSON error shape, with a Retry-After as every key limit's 429",
			r.status, r.errCode, r.jsonErr, r.retryAfter)
	}
	if r.latency > 500*time.Millisecond {
		t.Errorf("third stream refused after %v, want at once", r.latency)
	}
	// The body's label is no way around the bound: the body is read as
	// JSON when it is plainly a JSON object, and media types in any case.
	for _, ct := range []string{"application/x-www-form-urlencoded", "Application/JSON", "text/plain"} {
		req := c.request(chatStream, 30)
		req.Header.Set("Content-Type", ct)
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || !bytes.Contains(b, []byte("too_many_streams")) {
			t.Errorf("third stream labelled %q: status %d %s, want 429 too_many_streams", ct, resp.StatusCode, b)
		}
	}
	if r := c.do(chatPlain, 4); r.out != okAnswer {
		t.Errorf("a plain request with two streams open: %s (status %d), want success", r.out, r.status)
	}
	// One client leaves: its slot is free again.
	s2.Body.Close()
	var s3 *http.Response
	for range 50 {
		resp, err := c.hc.Do(c.request(chatStream, 5))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			s3 = resp
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if s3 == nil {
		t.Error("the slot of a stream whose client left was not freed within 1s")
	}
	close(release)
	rest, _ := io.ReadAll(br1)
	s1.Body.Close()
	if !bytes.Contains(rest, []byte("[DONE]")) {
		t.Errorf("first stream ended without [DONE]: %q", rest)
	}
	if s3 != nil {
		_, _ = io.Copy(io.Discard, s3.Body)
		s3.Body.Close()
	}
	// Every stream is over: two at once are allowed again.
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range 2 {
		wg.Go(func() { results[i] = c.do(chatStream, 10+i) })
	}
	wg.Wait()
	for i, r := range results {
		if r.out != okAnswer {
			t.Errorf("stream after the others ended (%d): %s, status %d, code %q; want success", i, r.out, r.status, r.errCode)
		}
	}
	if n := opened.Load(); n < 4 {
		t.Errorf("the upstream opened %d streams, want >= 4", n)
	}
}

// TestSecurityTotalTimeBounded: timeouts.total bounds a whole request.
// A backend that never answers gets the client a 504 in the JSON error
// shape once it passes; a stream still running when it passes ends with an
// error event, never silently; a client trickling its body is cut off too.
func TestSecurityTotalTimeBounded(t *testing.T) {
	const total = 400 * time.Millisecond
	set := map[string]any{"timeouts.total": "400ms", "timeouts.response_header": "10s", "timeouts.stream_idle": "10s"}

	t.Run("hanging backend", func(t *testing.T) {
		o := simOptions("a")
		o.Faults = sim.Faults{Hang: 1}
		a := newSim(t, "a", o)
		g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, set))
		c := newClient(t, g.url)
		for _, k := range []kind{chatPlain, chatStream} {
			r := c.do(k, 0)
			if r.status != http.StatusGatewayTimeout || !r.jsonErr {
				t.Errorf("%s: status %d (%s, JSON %v), want a 504 JSON error", k, r.status, r.out, r.jsonErr)
			}
			if r.latency < total-50*time.Millisecond || r.latency > total+time.Second {
				t.Errorf("%s: answered after %v, want about timeouts.total (%v)", k, r.latency, total)
			}
		}
	})

	t.Run("stream outlasting it", func(t *testing.T) {
		o := simOptions("a")
		o.TTFT, o.TokenInterval = 0, 50*time.Millisecond // 40 tokens: 2 s
		a := newSim(t, "a", o)
		g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, set))
		c := newClient(t, g.url)
		req := c.request(chatStream, 0)
		req.Body = io.NopCloser(strings.NewReader(`{"messages":[{"role":"user","content":"long [[tokens:40]]"}],"stream":true}`))
		req.ContentLength = -1
		r := c.send(req, chatStream, 0)
		if r.latency > total+time.Second {
			t.Errorf("stream ran %v, want it ended about timeouts.total (%v)", r.latency, total)
		}
		if r.out == truncated {
			t.Fatalf("BUG: a stream still running when timeouts.total passed ended silently after %v (no [DONE], no error event): "+
				"internal/proxy/forward.go relayStream treats ctx.Err() != nil (the total deadline) as the client leaving "+
				"(q.err = errClientGone) and writes no error event; it should test r.Context().Err() for the client and end "+
				"the stream with an error event (code timeout) when the deadline passed", r.latency.Round(time.Millisecond))
		}
		if r.out != errorAnswer {
			t.Errorf("stream outlasting timeouts.total: %s, want a clear error event", r.out)
		}
	})

	t.Run("body trickled slowly", func(t *testing.T) {
		a := newSim(t, "a", simOptions("a"))
		g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, set))
		conn, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: gateway\r\napi-key: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", chatPath, clientKey)
		done := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(conn)
			done <- b
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		limit := time.After(total + time.Second)
		for {
			select {
			case b := <-done:
				took := time.Since(start)
				t.Logf("slow body: the gateway answered or closed after %v: %.80q", took.Round(time.Millisecond), b)
				if took > total+time.Second {
					t.Errorf("slow body cut off after %v, want about timeouts.total (%v)", took, total)
				}
				return
			case <-tick.C:
				_, _ = io.WriteString(conn, " ")
			case <-limit:
				t.Fatalf("BUG: a client trickling its body (1 byte / 100 ms) still holds its request open after %v, "+
					"beyond timeouts.total (%v): internal/proxy/handler.go reads the body (readBody) before forward sets the "+
					"deadline, and app.Server sets no ReadTimeout; the read should be bounded too, e.g. "+
					"http.NewResponseController(w).SetReadDeadline(q.start.Add(cfg.Total)) before readBody, answering 408 "+
					"in the JSON error shape", time.Since(start).Round(time.Millisecond), total)
			}
		}
	})
}

// TestSecurityNoUpstreamURLFromRequest: whatever a request says — an
// absolute-form request target, a Host header, X-Forwarded-Host, Forwarded,
// X-Original-URL, a full URL in the path or in the model field — it goes
// only to a configured backend, or is refused.
func TestSecurityNoUpstreamURLFromRequest(t *testing.T) {
	evil := newUpstream(t, "evil", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"stolen":true}`)
	}))
	eh := strings.TrimPrefix(evil.url, "http://")
	a := newSim(t, "a", simOptions("a"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, nil))
	c := newClient(t, g.url)

	// raw sends a request line and headers as given, over a fresh connection.
	raw := func(target string, hdr string, body string) (int, string) {
		t.Helper()
		conn, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\n%sapi-key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			target, hdr, clientKey, len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Llmgate-Backend")
	}
	cases := []struct {
		name, target, hdr, body string
	}{
		{"absolute-form target", "http://" + eh + chatPath, "Host: " + eh + "\r\n", chatBody},
		{"https absolute-form target", "https://" + eh + chatPath, "Host: " + eh + "\r\n", chatBody},
		{"Host header", chatPath, "Host: " + eh + "\r\n", chatBody},
		{"X-Forwarded-Host", chatPath, "Host: gateway\r\nX-Forwarded-Host: " + eh + "\r\nX-Forwarded-Proto: http\r\n", chatBody},
		{"Forwarded", chatPath, "Host: gateway\r\nForwarded: host=" + eh + ";proto=http\r\n", chatBody},
		{"X-Original-URL", chatPath, "Host: gateway\r\nX-Original-URL: " + evil.url + chatPath + "\r\nX-Rewrite-URL: " + evil.url + chatPath + "\r\n", chatBody},
		{"full URL as the deployment", "/openai/deployments/http:%2F%2F" + eh + "/chat/completions?api-version=" + apiVersion, "Host: gateway\r\n", chatBody},
		{"full URL in the path", "/openai/deployments/gpt-4o/chat/completions/http://" + eh + "/x?api-version=" + apiVersion, "Host: gateway\r\n", chatBody},
		{"full URL before the path", "/http://" + eh + chatPath, "Host: gateway\r\n", chatBody},
		{"host:port as the deployment", "/openai/deployments/" + eh + "/chat/completions?api-version=" + apiVersion, "Host: gateway\r\n", chatBody},
		{"userinfo-looking deployment", "/openai/deployments/x@" + eh + "/chat/completions?api-version=" + apiVersion, "Host: gateway\r\n", chatBody},
		{"dot segments", "/openai/deployments/gpt-4o/../../../" + eh + "/chat/completions?api-version=" + apiVersion, "Host: gateway\r\n", chatBody},
		{"encoded dot segments", "/openai/deployments/%2e%2e/%2e%2e/chat/completions?api-version=" + apiVersion, "Host: gateway\r\n", chatBody},
		{"URL in the query", chatPath + "&url=" + url.QueryEscape(evil.url) + "&endpoint=" + url.QueryEscape(evil.url), "Host: gateway\r\n", chatBody},
		{"URL as the model (OpenAI style)", "/v1/chat/completions", "Host: gateway\r\n", `{"model":"` + evil.url + `/v1","messages":[{"role":"user","content":"hi"}]}`},
		{"host as the model (OpenAI style)", "/v1/chat/completions", "Host: gateway\r\n", `{"model":"` + eh + `","messages":[{"role":"user","content":"hi"}]}`},
		{"Azure v1 surface with a URL model", "/openai/v1/chat/completions", "Host: gateway\r\n", `{"model":"//` + eh + `","messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tc := range cases {
		status, backend := raw(tc.target, tc.hdr, tc.body)
		t.Logf("%s: status %d, backend %q", tc.name, status, backend)
		if status < 400 && backend != "a" {
			t.Errorf("%s: status %d from backend %q, want the configured backend or a refusal", tc.name, status, backend)
		}
	}
	// Through a normal client too, with the forwarding headers.
	status, hdr, _ := call(t, c.hc, http.MethodPost, g.url+chatPath, map[string]string{
		"api-key": clientKey, "X-Forwarded-Host": eh, "X-Forwarded-Server": eh, "X-Host": eh, "X-Backend-URL": evil.url,
	}, chatBody)
	if status != http.StatusOK || hdr.Get("X-Llmgate-Backend") != "a" {
		t.Errorf("forwarding headers: status %d backend %q", status, hdr.Get("X-Llmgate-Backend"))
	}
	if n := evil.received.Load(); n != 0 {
		t.Errorf("the host named in requests received %d requests, want 0", n)
	}
}

// TestSecurityAdminRefusesClientKeys: every admin endpoint refuses a
// client key (in api-key, Bearer or Basic) with 401, and a missing or wrong
// one, with the same bytes (so they cannot tell a client key from a wrong
// guess); the admin key opens them; the admin key is no client key on the
// API; and a config whose client key equals the admin key does not load.
// (/metrics is public by default; here it is made private to be checked too.)
func TestSecurityAdminRefusesClientKeys(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a)}, map[string]any{"admin.key": adminKey, "admin.metrics_public": false}))
	c := newClient(t, g.url)
	paths := []string{"/admin/backends", "/admin/keys", "/status", "/metrics", "/admin/usage", "/debug/pprof/"}
	basic := func(pw string) string {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth("admin", pw)
		return req.Header.Get("Authorization")
	}
	creds := []struct {
		name string
		hdr  map[string]string
	}{
		{"client key in api-key", map[string]string{"api-key": clientKey}},
		{"client key as Bearer", map[string]string{"Authorization": "Bearer " + clientKey}},
		{"client key as Basic password", map[string]string{"Authorization": basic(clientKey)}},
		{"no key", nil},
		{"wrong key", map[string]string{"api-key": adminKey + "x"}},
	}
	var unwired []string
	for _, p := range paths {
		status, _, _ := call(t, c.hc, http.MethodGet, g.url+p, map[string]string{"api-key": adminKey}, "")
		if status == http.StatusNotFound && p == "/admin/usage" {
			unwired = append(unwired, p)
		} else if status != http.StatusOK {
			t.Errorf("GET %s with the admin key: %d, want 200", p, status)
		}
		_, _, wrongBody := call(t, c.hc, http.MethodGet, g.url+p, map[string]string{"api-key": adminKey + "x"}, "")
		for _, cr := range creds {
			status, _, body := call(t, c.hc, http.MethodGet, g.url+p, cr.hdr, "")
			if status == http.StatusNotFound && slices.Contains(unwired, p) {
				continue
			}
			if status != http.StatusUnauthorized {
				t.Errorf("GET %s with %s: %d, want 401", p, cr.name, status)
			}
			if !bytes.Equal(body, wrongBody) {
				t.Errorf("GET %s with %s: body %q differs from a wrong key's %q", p, cr.name, body, wrongBody)
			}
			// Refused: no backend data (its URL), no metrics.
			if bytes.Contains(body, []byte(a.url)) || bytes.Contains(body, []byte("llmgate_")) || bytes.Contains(body, []byte(keyName)) {
				t.Errorf("GET %s with %s: the body carries data", p, cr.name)
			}
			if p != "/status" {
				if _, _, _, ok := jsonError(body); !ok {
					t.Errorf("GET %s with %s: body %.100q is not the JSON error shape", p, cr.name, body)
				}
			}
		}
	}
	// The admin key is not a client key.
	status, _, _ := call(t, c.hc, http.MethodPost, g.url+chatPath, map[string]string{"api-key": adminKey}, chatBody)
	if status != http.StatusUnauthorized {
		t.Errorf("the admin key on the API: %d, want 401", status)
	}
	// A client key equal to the admin key is refused at load.
	bad := drillYAML(t, []backendSpec{be(a)}, map[string]any{"admin.key": clientKey})
	if _, err := config.Parse("bad.yaml", bad, noEnv); err == nil || !strings.Contains(err.Error(), "must differ from admin.key") {
		t.Errorf("config with admin.key equal to a client key: %v, want it refused", err)
	}
	if n := a.leaks.Load(); n != 0 {
		t.Errorf("the admin or client key reached the upstream %d times", n)
	}
	if len(unwired) > 0 {
		t.Fatalf("BUG: %v answers 404 even with the admin key, so a client key gets 404 rather than 401: internal/app/store.go "+
			"defines serveUsage but internal/app/app.go New does not pass it to admin.New (Options.Routes "+
			"{\"GET /admin/usage\": ...}); also internal/admin/admin.go ServeHTTP answers 404 for an unknown path before "+
			"checking the key, where checking first would refuse client keys on every /admin/ path", unwired)
	}
}

// TestSecurityGovulncheck runs govulncheck when asked to
// (LLMGATE_GOVULNCHECK=1) and the tool is installed; it needs the
// vulnerability database at vuln.go.dev, which offline CI cannot reach.
func TestSecurityGovulncheck(t *testing.T) {
	// CI runs scripts/vulncheck.sh (govulncheck against a local copy of the
	// vulnerability database built from the golang.org/x/vulndb module) as a
	// step of its own; here it runs on request, since it downloads and
	// builds for about a minute.
	if os.Getenv("LLMGATE_GOVULNCHECK") != "1" {
		t.Skip("set LLMGATE_GOVULNCHECK=1 to run scripts/vulncheck.sh here (.ci/run runs it as its own step)")
	}
	cmd := exec.Command("bash", "scripts/vulncheck.sh")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	t.Logf("govulncheck:\n%s", out)
	if err != nil {
		t.Errorf("govulncheck: %v", err)
	}
}
