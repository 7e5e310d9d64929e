package app_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/app"
)

// fastRetry keeps the backoff in milliseconds so failover tests run quickly.
const fastRetry = "retry:\n  count: 3\n  interval: 1ms\n"

func TestUnauthorizedMakesNoUpstreamCall(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)

	const want = `{"error":{"code":"401","message":"Unauthorized. Invalid API key."}}`
	cases := []struct {
		name   string
		header map[string]string
	}{
		{"no key", nil},
		{"wrong api-key", map[string]string{"api-key": "ck-wrong"}},
		{"empty api-key", map[string]string{"api-key": ""}},
		{"wrong bearer", map[string]string{"Authorization": "Bearer ck-wrong"}},
		{"bearer without token", map[string]string{"Authorization": "Bearer "}},
		{"right key, wrong scheme", map[string]string{"Authorization": "Basic " + clientKey}},
		{"key with a suffix", map[string]string{"api-key": clientKey + "x"}},
		{"key prefix", map[string]string{"api-key": clientKey[:len(clientKey)-1]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody))
			req.Header.Del("api-key")
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status: got %d, want 401", resp.StatusCode)
			}
			if string(body) != want {
				t.Errorf("body: got %s, want %s", body, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			if got := resp.Header.Get("X-Llmgate-Attempts"); got != "0" {
				t.Errorf("X-Llmgate-Attempts: got %q, want 0", got)
			}
			if _, ok := resp.Header["X-Llmgate-Backend"]; !ok {
				t.Errorf("X-Llmgate-Backend missing")
			}
		})
	}
	if n := len(rec.Calls()); n != 0 {
		t.Fatalf("upstream calls: got %d, want 0", n)
	}
}

func TestClientKeyAcceptedInBothHeaders(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	for name, set := range map[string]func(h http.Header){
		"api-key":          func(h http.Header) { h.Set("api-key", clientKey) },
		"bearer":           func(h http.Header) { h.Set("Authorization", "Bearer "+clientKey) },
		"bearer lowercase": func(h http.Header) { h.Set("Authorization", "bearer "+clientKey) },
	} {
		t.Run(name, func(t *testing.T) {
			req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody))
			req.Header.Del("api-key")
			set(req.Header)
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
			}
		})
	}
}

func TestWeightedSplit75To25(t *testing.T) {
	t.Parallel()
	// 10 000 requests: the gateway's handler is called directly and its
	// upstreams are in-process handlers, so the test measures selection,
	// not sockets.
	rec := newRecorder()
	upstreams := inProcess{
		"a.test": rec.handler("a", respond(http.StatusOK, `{}`)),
		"b.test": rec.handler("b", respond(http.StatusOK, `{}`)),
	}
	cfg := parseConfig(t, []backend{weighted("a", "http://a.test", 75), weighted("b", "http://b.test", 25)}, fastRetry)
	a, err := app.New(cfg, app.Options{Transport: upstreams})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()

	const total, workers = 10000, 4
	var next atomic.Int64
	var mu sync.Mutex
	byHeader := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			local := map[string]int{}
			for next.Add(1) <= total {
				req := httptest.NewRequest(http.MethodPost, chatPath, strings.NewReader(chatBody))
				req.Header.Set("api-key", clientKey)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					t.Errorf("status: got %d, want 200", w.Code)
					return
				}
				local[w.Header().Get("X-Llmgate-Backend")]++
			}
			mu.Lock()
			for k, v := range local {
				byHeader[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if byHeader["a"]+byHeader["b"] != total {
		t.Fatalf("x-llmgate-backend counts: got %v, want %d requests on a and b", byHeader, total)
	}
	if rec.Count("a") != byHeader["a"] || rec.Count("b") != byHeader["b"] {
		t.Errorf("upstream counts a=%d b=%d disagree with x-llmgate-backend %v", rec.Count("a"), rec.Count("b"), byHeader)
	}
	share := 100 * float64(byHeader["a"]) / total
	t.Logf("a: %d (%.2f%%), b: %d", byHeader["a"], share, byHeader["b"])
	if share < 73 || share > 77 {
		t.Errorf("share of a: got %.2f%%, want 75%% ± 2 points", share)
	}
}

// gaps returns the time between consecutive calls.
func gaps(calls []call) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(calls); i++ {
		out = append(out, calls[i].At.Sub(calls[i-1].At))
	}
	return out
}

// slack is how much later than its formula a retry may come on a busy machine.
const slack = 400 * time.Millisecond

func TestBackoffWaitsFollowAPIMFormula(t *testing.T) {
	// Not parallel: the lower bounds are strict, and the upper bounds are
	// kept meaningful by running alone.
	type window struct{ lo, hi time.Duration }
	ms := func(lo, hi int) window {
		return window{time.Duration(lo) * time.Millisecond, time.Duration(hi) * time.Millisecond}
	}
	cases := []struct {
		name     string
		backends int // all answer 500
		retry    string
		want     []window // wait before retry 1, 2, ...
	}{
		{
			// More retries than failures that trip a circuit breaker: the
			// only backend is still retried count times.
			name:     "interval only: fixed",
			backends: 1,
			retry:    "retry:\n  count: 7\n  interval: 40ms\n",
			want:     []window{ms(40, 40), ms(40, 40), ms(40, 40), ms(40, 40), ms(40, 40), ms(40, 40), ms(40, 40)},
		},
		{
			name:     "interval and delta: linear",
			backends: 1,
			retry:    "retry:\n  count: 3\n  interval: 20ms\n  delta: 30ms\n",
			want:     []window{ms(20, 20), ms(50, 50), ms(80, 80)},
		},
		{
			// interval + 2^(n-1)·random(0.8δ, 1.2δ), capped at max_interval:
			// n=1: 10+[16,24]; n=2: 10+[32,48]; n=3: 10+[64,96]; n=4: 10+[128,192] → 100.
			name:     "all three: exponential with jitter, capped",
			backends: 1,
			retry:    "retry:\n  count: 4\n  interval: 10ms\n  delta: 20ms\n  max_interval: 100ms\n",
			want:     []window{ms(26, 34), ms(42, 58), ms(74, 100), ms(100, 100)},
		},
		{
			name:     "first fast retry",
			backends: 1,
			retry:    "retry:\n  count: 3\n  interval: 300ms\n  first_fast_retry: true\n",
			want:     []window{ms(0, 0), ms(300, 300), ms(300, 300)},
		},
		{
			name:     "apim mode waits even when switching backend",
			backends: 2,
			retry:    "retry:\n  count: 1\n  interval: 60ms\n  mode: apim\n",
			want:     []window{ms(60, 60)},
		},
		{
			// Two fresh backends: retry 1 goes at once (the formula would
			// wait 300ms); retry 2 must call a backend again and waits the
			// formula for retry 2 (300+100ms).
			name:     "smart mode: fresh backend at once, formula on a repeat",
			backends: 2,
			retry:    "retry:\n  count: 2\n  interval: 300ms\n  delta: 100ms\n",
			want:     []window{ms(0, 0), ms(400, 400)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			var bs []backend
			for i := range tc.backends {
				name := string(rune('a' + i))
				bs = append(bs, be(name, rec.upstream(t, name, serverError(`{"error":{"code":"500","message":"boom"}}`)).URL))
			}
			gw := startGateway(t, bs, tc.retry)
			resp, _ := gw.chat(t)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status: got %d, want 500", resp.StatusCode)
			}
			calls := rec.Calls()
			if len(calls) != len(tc.want)+1 {
				t.Fatalf("attempts: got %d, want %d", len(calls), len(tc.want)+1)
			}
			for i, g := range gaps(calls) {
				w := tc.want[i]
				t.Logf("retry %d: waited %v (formula %v..%v)", i+1, g.Round(100*time.Microsecond), w.lo, w.hi)
				if g < w.lo {
					t.Errorf("retry %d: waited %v, want at least %v", i+1, g, w.lo)
				}
				hi := w.hi + slack
				if w.hi == 0 {
					// An immediate retry must come well before the formula's
					// wait, which is at least 300ms in these cases.
					hi = 200 * time.Millisecond
				}
				if g > hi {
					t.Errorf("retry %d: waited %v, want at most %v", i+1, g, hi)
				}
			}
		})
	}
}

func TestFailoverNeverRepeatsBackendThatJustFailed(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			var bs []backend
			for i := range n {
				name := string(rune('a' + i))
				bs = append(bs, be(name, rec.upstream(t, name, serverError(`{"error":{"code":"500"}}`)).URL))
			}
			// Each request gets a fresh gateway, so that what one request
			// taught the gateway about its backends cannot shape the next
			// one's order: every sequence is a fresh random draw.
			const retries, requests = 5, 25
			for i := range requests {
				gw := startGateway(t, bs, fmt.Sprintf("retry:\n  count: %d\n  interval: 1ms\n", retries))
				req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody))
				req.Header.Set("X-Test-Request", strconv.Itoa(i))
				resp, _ := do(t, req)
				if got := resp.Header.Get("X-Llmgate-Attempts"); got != strconv.Itoa(retries+1) {
					t.Errorf("X-Llmgate-Attempts: got %q, want %d", got, retries+1)
				}
				gw.Srv.Close()
			}
			seqs := map[string][]string{}
			for _, c := range rec.Calls() {
				id := c.Header.Get("X-Test-Request")
				seqs[id] = append(seqs[id], c.Backend)
			}
			if len(seqs) != requests {
				t.Fatalf("requests seen upstream: got %d, want %d", len(seqs), requests)
			}
			firsts := map[string]bool{}
			for id, seq := range seqs {
				if len(seq) != retries+1 {
					t.Errorf("request %s: got %d attempts %v, want %d", id, len(seq), seq, retries+1)
					continue
				}
				firsts[seq[0]] = true
				seen := map[string]bool{}
				for i, name := range seq {
					if i > 0 && name == seq[i-1] {
						t.Errorf("request %s: attempt %d repeats backend %s that just failed: %v", id, i+1, name, seq)
					}
					if i < n && seen[name] {
						t.Errorf("request %s: attempt %d goes back to %s while a backend was untried: %v", id, i+1, name, seq)
					}
					seen[name] = true
				}
			}
			if len(firsts) < 2 {
				t.Errorf("every request started on %v: the order is not drawn at random", firsts)
			}
		})
	}
}

func TestAllAttemptsFailReturnsLastUpstreamResponse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"503", http.StatusServiceUnavailable, `{"error":{"code":"ServiceUnavailable","message":"b is busy"}}`},
		{"429 without delay", http.StatusTooManyRequests, `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded token rate limit."}}`},
		{"502 not JSON", http.StatusBadGateway, "<html>bad gateway</html>\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			// Weight 0 makes b the second choice, so b answers last.
			a := rec.upstream(t, "a", respond(http.StatusInternalServerError, `{"error":{"message":"a failed"}}`, "X-Upstream", "a"))
			b := rec.upstream(t, "b", func(w http.ResponseWriter, _ *http.Request, _ call) {
				h := w.Header()
				h.Set("Content-Type", "text/x-test; charset=utf-8")
				h.Set("X-Upstream", "b")
				h.Set("Apim-Request-Id", "apim-b-1")
				h.Set("X-Ms-Region", "Sweden Central")
				h.Add("X-Multi", "1")
				h.Add("X-Multi", "2")
				h.Set("Connection", "X-Hop-Only")
				h.Set("X-Hop-Only", "must not pass")
				h.Set("Keep-Alive", "timeout=5")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, "retry:\n  count: 1\n  interval: 1ms\n")
			resp, body := gw.chat(t)
			if got := rec.Backends(); strings.Join(got, ",") != "a,b" {
				t.Fatalf("attempts: got %v, want [a b]", got)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.status)
			}
			if string(body) != tc.body {
				t.Errorf("body: got %q, want %q", body, tc.body)
			}
			h := resp.Header
			for k, want := range map[string]string{
				"Content-Type":       "text/x-test; charset=utf-8",
				"X-Upstream":         "b",
				"Apim-Request-Id":    "apim-b-1",
				"X-Ms-Region":        "Sweden Central",
				"X-Llmgate-Backend":  "b",
				"X-Llmgate-Attempts": "2",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if got := h.Values("X-Multi"); strings.Join(got, ",") != "1,2" {
				t.Errorf("X-Multi: got %q, want [1 2]", got)
			}
			for _, k := range []string{"X-Hop-Only", "Keep-Alive"} {
				if v, ok := h[k]; ok {
					t.Errorf("hop-by-hop header %s passed through: %q", k, v)
				}
			}
		})
	}
}

func TestBodyIdenticalOnEveryAttempt(t *testing.T) {
	t.Parallel()
	// A JSON body with bytes a careless proxy might alter: non-ASCII text,
	// escapes, odd whitespace, CRLFs, and a field larger than any buffer.
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = "abcdefghijklmnopqrstuvwxyz0123456789 "[i%37]
	}
	body := []byte("{\r\n  \"messages\" : [ {\"role\":\"user\",\"content\":\"h\u00e9llo \\u00e9 \\\"q\\\" \U0001F600\t\"} ],\n\"stream\":false,\"pad\":\"" + string(big) + "\"   }\n")
	want := sha256.Sum256(body)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			var bs []backend
			for _, name := range []string{"a", "b", "c"} {
				bs = append(bs, be(name, rec.upstream(t, name, serverError(`{}`)).URL))
			}
			gw := startGateway(t, bs, "retry:\n  count: 4\n  interval: 1ms\n")
			req := gw.request(t, http.MethodPost, chatPath, body)
			if chunked {
				req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:1000]), bytes.NewReader(body[1000:])))
				req.ContentLength = -1
			}
			resp, _ := do(t, req)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status: got %d, want 500", resp.StatusCode)
			}
			calls := rec.Calls()
			if len(calls) != 5 {
				t.Fatalf("attempts: got %d, want 5", len(calls))
			}
			for i, c := range calls {
				if sha256.Sum256(c.Body) != want {
					t.Errorf("attempt %d (%s): body differs: got %d bytes, want %d", i+1, c.Backend, len(c.Body), len(body))
				}
				if got := c.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
					t.Errorf("attempt %d: Content-Length: got %q, want %d", i+1, got, len(body))
				}
			}
		})
	}
}

func TestMultipartAudioUploadArrivesIntact(t *testing.T) {
	t.Parallel()
	audio := make([]byte, 512<<10)
	_, _ = rand.Read(audio)
	copy(audio, "RIFF\x00\x00\x00\x00WAVEfmt ")
	// Sequences that look like multipart structure inside the file.
	copy(audio[1000:], "\r\n--boundary\r\n\r\n--")

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("model", "whisper-1")
	_ = mw.WriteField("response_format", "text")
	part, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="file"; filename="speech.wav"`},
		"Content-Type":        {"audio/wav"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = part.Write(audio)
	_ = mw.Close()
	ctype := mw.FormDataContentType()

	rec := newRecorder()
	check := func(w http.ResponseWriter, r *http.Request, c call) {
		if got := c.Header.Get("Content-Type"); got != ctype {
			t.Errorf("upstream Content-Type: got %q, want %q", got, ctype)
		}
		_, params, err := mime.ParseMediaType(c.Header.Get("Content-Type"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mr := multipart.NewReader(bytes.NewReader(c.Body), params["boundary"])
		fields := map[string][]byte{}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("upstream multipart: %v", err)
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(p)
			fields[p.FormName()] = b
			if p.FormName() == "file" && (p.FileName() != "speech.wav" || p.Header.Get("Content-Type") != "audio/wav") {
				t.Errorf("file part: got name %q type %q, want speech.wav audio/wav", p.FileName(), p.Header.Get("Content-Type"))
			}
		}
		if !bytes.Equal(fields["file"], audio) {
			t.Errorf("audio: got %d bytes, want the %d bytes sent", len(fields["file"]), len(audio))
		}
		if string(fields["model"]) != "whisper-1" || string(fields["response_format"]) != "text" {
			t.Errorf("fields: got model %q response_format %q", fields["model"], fields["response_format"])
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "hello world\n")
	}
	a := rec.upstream(t, "a", serverError(`{"error":{"code":"500"}}`))
	b := rec.upstream(t, "b", check)
	gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)

	req := gw.request(t, http.MethodPost, "/openai/deployments/whisper/audio/transcriptions?api-version=2024-06-01", form.Bytes())
	req.Header.Set("Content-Type", ctype)
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK || string(body) != "hello world\n" {
		t.Fatalf("response: got %d %q, want 200 %q", resp.StatusCode, body, "hello world\n")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want text/plain; charset=utf-8", ct)
	}
	calls := rec.Calls()
	if len(calls) != 2 {
		t.Fatalf("attempts: got %d, want 2", len(calls))
	}
	if !bytes.Equal(calls[0].Body, form.Bytes()) || !bytes.Equal(calls[1].Body, form.Bytes()) {
		t.Errorf("the form's bytes changed between client and upstream")
	}
}

func TestClientDisconnectCancelsUpstreamRequest(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	arrived, gone := make(chan struct{}, 1), make(chan struct{}, 1)
	up := rec.upstream(t, "a", blockUntilGone(arrived, gone))
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody)).WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, arrived, 5*time.Second, "the upstream call")
	cancel()
	waitFor(t, gone, 5*time.Second, "the upstream request to be cancelled")
	if err := waitFor(t, errc, 5*time.Second, "the client"); !errors.Is(err, context.Canceled) {
		t.Errorf("client: got %v, want context.Canceled", err)
	}
	// Once the handler has logged, it is done: the cancellation was not
	// taken for a backend failure, so no retry followed.
	waitLog(t, gw.Log, 1)
	if n := rec.Count("a"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	if got := gw.Log.accessLines(t)[0]["status"]; got != float64(499) {
		t.Errorf("logged status: got %v, want 499", got)
	}
}

func TestClientDisconnectCancelsRetryWait(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	failed := make(chan struct{}, 1)
	up := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, c call) {
		serverError(`{}`)(w, r, c)
		failed <- struct{}{}
	})
	a, log := newApp(t, parseConfig(t, []backend{be("a", up.URL)}, "retry:\n  count: 1\n  interval: 30s\n"))
	returned := make(chan time.Time, 1)
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.Handler().ServeHTTP(w, r)
		returned <- time.Now()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+chatPath, strings.NewReader(chatBody))
		req.Header.Set("api-key", clientKey)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, failed, 5*time.Second, "the first attempt")
	time.Sleep(100 * time.Millisecond) // the gateway is now waiting 30s before the retry
	cancelled := time.Now()
	cancel()
	end := waitFor(t, returned, 5*time.Second, "the handler to return")
	if d := end.Sub(cancelled); d > 2*time.Second {
		t.Errorf("handler returned %v after the client left, want promptly", d)
	}
	if n := rec.Count("a"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1 (no retry after the client left)", n)
	}
	waitLog(t, log, 1)
	line := log.accessLines(t)[0]
	if line["status"] != float64(499) || line["backends"] != "a:500" {
		t.Errorf("logged status %v after %v, want 499 after a:500 (cancelled in the wait)", line["status"], line["backends"])
	}
}

func TestBodyTooLarge413(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry+"max_body_bytes: 1024\n")

	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"content-length over", 1025, false, http.StatusRequestEntityTooLarge},
		{"chunked over", 1025, true, http.StatusRequestEntityTooLarge},
		{"chunked far over", 1 << 20, true, http.StatusRequestEntityTooLarge},
		{"content-length at limit", 1024, false, http.StatusOK},
		{"chunked at limit", 1024, true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.Calls())
			body := bytes.Repeat([]byte("x"), tc.size)
			req := gw.request(t, http.MethodPost, chatPath, body)
			if tc.chunked {
				req.Body = io.NopCloser(bytes.NewReader(body))
				req.ContentLength = -1
			}
			resp, got := do(t, req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, tc.want, got)
			}
			calls := len(rec.Calls()) - before
			if tc.want == http.StatusOK {
				if calls != 1 {
					t.Errorf("upstream calls: got %d, want 1", calls)
				}
				return
			}
			if calls != 0 {
				t.Errorf("upstream calls: got %d, want 0", calls)
			}
			e := decodeError(t, got)
			if e.Error.Code != "request_too_large" || e.Error.Type != "invalid_request_error" {
				t.Errorf("error: got code %q type %q, want request_too_large invalid_request_error", e.Error.Code, e.Error.Type)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			_, hasBackend := resp.Header["X-Llmgate-Backend"]
			if got := resp.Header.Get("X-Llmgate-Attempts"); got != "0" || !hasBackend {
				t.Errorf("gateway headers: got attempts %q, backend present %v; want 0 and present", got, hasBackend)
			}
		})
	}
}

func TestBodyLimitDefaultsTo32MiB(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	if got := gw.App.Config().MaxBodyBytes; got != 32<<20 {
		t.Fatalf("max_body_bytes default: got %d, want %d", got, 32<<20)
	}
	// A declared length over the limit is refused before the body is read.
	req := gw.request(t, http.MethodPost, chatPath, nil)
	req.Body = io.NopCloser(io.LimitReader(zeros{}, 32<<20+1))
	req.ContentLength = 32<<20 + 1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status: got %d, want 413 (%s)", resp.StatusCode, b)
	}
	if n := rec.Count("a"); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestClientKeyNeverReachesUpstreamNorLog(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", serverError(`{}`))
	b := rec.upstream(t, "b", ok())
	gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)

	variants := map[string]func(h http.Header){
		"api-key": func(h http.Header) { h.Set("api-key", clientKey) },
		"bearer":  func(h http.Header) { h.Del("api-key"); h.Set("Authorization", "Bearer "+clientKey) },
		"both": func(h http.Header) {
			h.Set("api-key", clientKey)
			h.Set("Authorization", "Bearer "+clientKey)
		},
	}
	for name, set := range variants {
		req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody))
		set(req.Header)
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status: got %d, want 200 (%s)", name, resp.StatusCode, body)
		}
	}
	// A wrong key must not be logged either.
	req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody))
	req.Header.Set("api-key", "ck-WRONG-KEY-attempt")
	if resp, _ := do(t, req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: got %d, want 401", resp.StatusCode)
	}

	calls := rec.Calls()
	if len(calls) != 2*len(variants) {
		t.Fatalf("upstream calls: got %d, want %d", len(calls), 2*len(variants))
	}
	for _, c := range calls {
		if got := c.Header.Values("Api-Key"); len(got) != 1 || got[0] != backendKey(c.Backend) {
			t.Errorf("%s: api-key: got %q, want the backend's key only", c.Backend, got)
		}
		if v := c.Header.Get("Authorization"); v != "" {
			t.Errorf("%s: Authorization reached the upstream: %q", c.Backend, v)
		}
		for k, vs := range c.Header {
			for _, v := range vs {
				if strings.Contains(v, clientKey) {
					t.Errorf("%s: header %s carries the client key", c.Backend, k)
				}
			}
		}
		if strings.Contains(c.URI, clientKey) || bytes.Contains(c.Body, []byte(clientKey)) {
			t.Errorf("%s: the client key reached the upstream in the URI or body", c.Backend)
		}
	}

	waitLog(t, gw.Log, len(variants)+1)
	log := gw.Log.String()
	for _, secret := range []string{clientKey, "ck-WRONG-KEY-attempt", backendKey("a"), backendKey("b")} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, log)
		}
	}
	lines := gw.Log.accessLines(t)
	if len(lines) != len(variants)+1 {
		t.Fatalf("access log lines: got %d, want one per request (%d)", len(lines), len(variants)+1)
	}
	named := 0
	for _, l := range lines {
		if l["key_id"] == keyName {
			named++
		}
	}
	if named != len(variants) {
		t.Errorf("lines naming key %q: got %d, want %d\n%s", keyName, named, len(variants), log)
	}
}

// waitLog waits until the log has n access lines: a handler logs after its
// response is complete, so the client can be a moment ahead.
func waitLog(t testing.TB, log *syncBuffer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(log.accessLines(t)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("access log: got %d lines, want %d:\n%s", len(log.accessLines(t)), n, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAccessLogOneJSONLinePerRequest(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	for range 5 {
		gw.chat(t)
	}
	waitLog(t, gw.Log, 5)
	lines := gw.Log.accessLines(t)
	if len(lines) != 5 {
		t.Fatalf("access log lines: got %d, want 5", len(lines))
	}
	for _, l := range lines {
		for k, want := range map[string]any{
			"key_id": keyName, "status": float64(200), "attempts": float64(1),
			"deployment": "gpt-4o", "method": "POST", "backends": "a:200",
		} {
			if l[k] != want {
				t.Errorf("log %s: got %v, want %v", k, l[k], want)
			}
		}
	}
}

func TestGatewayHeadersAndUpstreamHeadersPassThrough(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	upHeaders := []string{
		"X-Ratelimit-Remaining-Tokens", "79000",
		"X-Ratelimit-Remaining-Requests", "479",
		"X-Ratelimit-Limit-Tokens", "80000",
		"Apim-Request-Id", "6a1c7e4e-0b4e-4c55-9d3b-1f2a3b4c5d6e",
		"X-Request-Id", "req-123",
		"X-Ms-Region", "East US",
		"Azure-Openai-Deployment-Utilization", "12.5%",
	}
	a := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429"}}`))
	b := rec.upstream(t, "b", respond(http.StatusOK, completionJSON, upHeaders...))
	gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
	resp, body := gw.chat(t)
	if resp.StatusCode != http.StatusOK || string(body) != completionJSON {
		t.Fatalf("response: got %d %s, want 200 and the upstream body", resp.StatusCode, body)
	}
	for i := 0; i < len(upHeaders); i += 2 {
		if got := resp.Header.Get(upHeaders[i]); got != upHeaders[i+1] {
			t.Errorf("%s: got %q, want %q", upHeaders[i], got, upHeaders[i+1])
		}
	}
	if got := resp.Header.Get("X-Llmgate-Backend"); got != "b" {
		t.Errorf("X-Llmgate-Backend: got %q, want b", got)
	}
	if got := resp.Header.Get("X-Llmgate-Attempts"); got != "2" {
		t.Errorf("X-Llmgate-Attempts: got %q, want 2", got)
	}

	// A first-try success.
	gw2 := startGateway(t, []backend{be("only", b.URL)}, fastRetry)
	resp, _ = gw2.chat(t)
	if resp.Header.Get("X-Llmgate-Backend") != "only" || resp.Header.Get("X-Llmgate-Attempts") != "1" {
		t.Errorf("first try: got backend %q attempts %q, want only 1", resp.Header.Get("X-Llmgate-Backend"), resp.Header.Get("X-Llmgate-Attempts"))
	}
}

func TestRetryAfterHonouredForSameBackend(t *testing.T) {
	// Not parallel: a timing lower bound.
	rec := newRecorder()
	up := rec.upstream(t, "a", sequence(
		respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"Please retry after 300ms"}}`, "Retry-After-Ms", "300"),
		ok(),
	))
	gw := startGateway(t, []backend{be("a", up.URL)}, "retry:\n  count: 2\n  interval: 10ms\n  max_interval: 2s\n")
	resp, body := gw.chat(t)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	calls := rec.Calls()
	if len(calls) != 2 {
		t.Fatalf("attempts: got %d, want 2", len(calls))
	}
	g := calls[1].At.Sub(calls[0].At)
	t.Logf("second attempt after %v", g)
	if g < 300*time.Millisecond {
		t.Errorf("second attempt after %v, want not before 300ms", g)
	}
	if g > 300*time.Millisecond+slack {
		t.Errorf("second attempt after %v, want soon after 300ms", g)
	}
	if got := resp.Header.Get("X-Llmgate-Attempts"); got != "2" {
		t.Errorf("X-Llmgate-Attempts: got %q, want 2", got)
	}
}

func TestRetryAfterBeyondMaxWaitAnswersAtOnce(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"Please retry after 20 seconds."}}`, "Retry-After", "20"))
	gw := startGateway(t, []backend{be("a", up.URL)}, "retry:\n  count: 3\n  interval: 10ms\n  max_interval: 1s\n")
	start := time.Now()
	resp, body := gw.chat(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answered after %v, want at once", d)
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status: got %d, want 429 (%s)", resp.StatusCode, body)
	}
	if n := rec.Count("a"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 18 || ra > 20 {
		t.Errorf("Retry-After: got %q, want about 20", resp.Header.Get("Retry-After"))
	}
}

func TestPathAndQueryPassUntouched(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	for _, target := range []string{
		"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
		"/openai/deployments/gpt-4o-mini/completions?api-version=2024-02-01&x=%2F%20a+b&x=2&empty=",
		"/openai/deployments/my%20dep/embeddings?api-version=2024-06-01",
		"/openai/v1/chat/completions",
		"/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview&semi=a;b",
	} {
		body := chatBody
		if strings.HasPrefix(target, "/openai/v1/") { // the model goes in the body there
			body = `{"model":"gpt-4o",` + chatBody[1:]
		}
		req := gw.request(t, http.MethodPost, target, []byte(body))
		if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d (%s)", target, resp.StatusCode, body)
			continue
		}
		calls := rec.Calls()
		if got := calls[len(calls)-1].URI; got != target {
			t.Errorf("upstream request target: got %q, want %q", got, target)
		}
	}
}

func TestBaseURLEndingInOpenAIIsNotDoubled(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	for _, tc := range []struct{ base, wantPrefix string }{
		{up.URL, ""},
		{up.URL + "/", ""},
		{up.URL + "/openai", ""},
		{up.URL + "/openai/", ""},
		{up.URL + "/gw/openai", "/gw"},
		{up.URL + "/gw", "/gw"},
	} {
		gw := startGateway(t, []backend{be("a", tc.base)}, fastRetry)
		resp, body := do(t, gw.request(t, http.MethodPost, chatPath, []byte(chatBody)))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("base %s: status %d (%s)", tc.base, resp.StatusCode, body)
			continue
		}
		calls := rec.Calls()
		if got, want := calls[len(calls)-1].URI, tc.wantPrefix+chatPath; got != want {
			t.Errorf("base %s: upstream got %q, want %q", tc.base, got, want)
		}
	}
}

// hang never answers: it waits for the gateway to give up (5 s at most).
func hang(_ http.ResponseWriter, r *http.Request, _ call) {
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

func TestUpstreamTimeoutGives504(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", hang)
	b := rec.upstream(t, "b", hang)
	gw := startGateway(t, []backend{be("a", a.URL), be("b", b.URL)}, "retry:\n  count: 1\n  interval: 1ms\ntimeouts:\n  response_header: 100ms\n")
	start := time.Now()
	resp, body := gw.chat(t)
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status: got %d, want 504 (%s)", resp.StatusCode, body)
	}
	e := decodeError(t, body)
	if e.Error.Code != "upstream_timeout" {
		t.Errorf("code: got %q, want upstream_timeout", e.Error.Code)
	}
	if got := strings.Join(rec.Backends(), ","); got != "a,b" && got != "b,a" {
		t.Errorf("attempts: got %s, want both backends once", got)
	}
	if elapsed < 200*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("took %v, want two 100ms timeouts", elapsed)
	}
	if got := resp.Header.Get("X-Llmgate-Attempts"); got != "2" {
		t.Errorf("X-Llmgate-Attempts: got %q, want 2", got)
	}
	if got := resp.Header.Get("X-Llmgate-Backend"); got != rec.Backends()[1] {
		t.Errorf("X-Llmgate-Backend: got %q, want the last tried %q", got, rec.Backends()[1])
	}
}

// TestABackendThatAnswersBadlyIsNotCalledUnreachable: a backend that
// answers with a redirect or with something that is not HTTP was reached:
// the client's 502 says what it did, not that it could not be reached.
func TestABackendThatAnswersBadlyIsNotCalledUnreachable(t *testing.T) {
	t.Parallel()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	garbage := rawTCP(t, "SSH-2.0-OpenSSH_9.2\r\n\r\n")
	for _, tc := range []struct {
		name, url, want string
	}{
		{"redirect", redirect.URL, "answered with a redirect (HTTP 307)"},
		{"not HTTP", garbage, "not valid HTTP"},
	} {
		gw := startGateway(t, []backend{be("a", tc.url)}, fastRetry)
		resp, body := gw.chat(t)
		e := decodeError(t, body)
		if resp.StatusCode != http.StatusBadGateway || e.Error.Code != "upstream_bad_response" || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("%s: %d %q %q, want 502 upstream_bad_response saying %q", tc.name, resp.StatusCode, e.Error.Code, e.Error.Message, tc.want)
		}
		if trail := resp.Header.Get("X-Llmgate-Trail"); strings.Contains(trail, "conn_error") {
			t.Errorf("%s: trail %q calls a backend that answered a connection error", tc.name, trail)
		}
	}
}

// rawTCP is an upstream that answers every request with answer as it is,
// on the bare connection, then closes.
func rawTCP(t *testing.T, answer string) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, answer)
	}))
	t.Cleanup(up.Close)
	return up.URL
}

func TestConnectionRefusedGives502(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, []backend{be("a", closedURL(t)), be("b", closedURL(t))}, fastRetry)
	resp, body := gw.chat(t)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status: got %d, want 502 (%s)", resp.StatusCode, body)
	}
	if e := decodeError(t, body); e.Error.Code != "upstream_unreachable" || e.Error.Type != "server_error" {
		t.Errorf("error: got code %q type %q, want upstream_unreachable server_error", e.Error.Code, e.Error.Type)
	}
	if got := resp.Header.Get("X-Llmgate-Attempts"); got != "4" {
		t.Errorf("X-Llmgate-Attempts: got %q, want 4", got)
	}
	if got := resp.Header.Get("X-Llmgate-Backend"); got != "a" && got != "b" {
		t.Errorf("X-Llmgate-Backend: got %q, want the last backend tried", got)
	}
}

func TestConnectionRefusedFailsOverToLiveBackend(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "live", ok())
	gw := startGateway(t, []backend{weighted("dead", closedURL(t), 1), weighted("live", up.URL, 0)}, fastRetry)
	resp, body := gw.chat(t)
	if resp.StatusCode != http.StatusOK || string(body) != completionJSON {
		t.Fatalf("response: got %d %s, want 200", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Llmgate-Backend") != "live" || resp.Header.Get("X-Llmgate-Attempts") != "2" {
		t.Errorf("got backend %q attempts %q, want live 2", resp.Header.Get("X-Llmgate-Backend"), resp.Header.Get("X-Llmgate-Attempts"))
	}
}

func TestCallerFaultIsNotRetried(t *testing.T) {
	t.Parallel()
	const filtered = `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}`
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			a := rec.upstream(t, "a", respond(status, filtered, "Apim-Request-Id", "x1"))
			b := rec.upstream(t, "b", ok())
			gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
			resp, body := gw.chat(t)
			if resp.StatusCode != status || string(body) != filtered {
				t.Errorf("response: got %d %s, want %d and the upstream body", resp.StatusCode, body, status)
			}
			if got := rec.Backends(); len(got) != 1 || got[0] != "a" {
				t.Errorf("attempts: got %v, want [a] only", got)
			}
			if resp.Header.Get("X-Llmgate-Attempts") != "1" || resp.Header.Get("Apim-Request-Id") != "x1" {
				t.Errorf("headers: got attempts %q apim-request-id %q", resp.Header.Get("X-Llmgate-Attempts"), resp.Header.Get("Apim-Request-Id"))
			}
		})
	}
}

// The client gets the last upstream *answer*: an attempt after it that got
// none (a timeout here) does not turn it into a 504, and the answer is
// named by the backend that gave it.
func TestLastAnswerWinsOverALaterTimeout(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	first := make(chan struct{}, 1)
	first <- struct{}{}
	flaky := func(w http.ResponseWriter, r *http.Request, c call) {
		select {
		case <-first: // the first call answers 500
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"boom","type":"server_error"}}`)
		default: // the next never answers
			hang(w, r, c)
		}
	}
	a := rec.upstream(t, "a", flaky)
	b := rec.upstream(t, "b", flaky)
	gw := startGateway(t, []backend{be("a", a.URL), be("b", b.URL)}, "retry:\n  count: 1\n  interval: 1ms\ntimeouts:\n  response_header: 100ms\n")
	resp, body := gw.chat(t)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "boom") {
		t.Fatalf("got %d %s, want the first backend's 500", resp.StatusCode, body)
	}
	tried := rec.Backends()
	if got := resp.Header.Get("X-Llmgate-Backend"); len(tried) != 2 || got != tried[0] {
		t.Errorf("X-Llmgate-Backend: got %q, want %q, the backend that answered (tried %v)", got, tried[0], tried)
	}
}

// A client asking for gzip (every openai-go call does) gets its answer
// uncompressed, from an upstream asked for none: a compressed answer's
// usage could not be read, and the key would be charged its estimate only.
func TestAnswersAreAskedForUncompressed(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, c call) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, completionJSON)
			_ = zw.Close()
			return
		}
		_, _ = io.WriteString(w, completionJSON)
	})
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	req := gw.request(t, http.MethodPost, chatPath, []byte(chatBody))
	req.Header.Set("Accept-Encoding", "gzip")
	resp, body := do(t, req)
	if resp.StatusCode != 200 || string(body) != completionJSON {
		t.Fatalf("got %d %q (Content-Encoding %q), want the completion", resp.StatusCode, body, resp.Header.Get("Content-Encoding"))
	}
	if ae := rec.Calls()[0].Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("upstream asked with Accept-Encoding %q, want none", ae)
	}
	waitLog(t, gw.Log, 1)
	if line := gw.Log.accessLines(t)[0]; line["prompt_tokens"] != float64(5) || line["completion_tokens"] != float64(3) {
		t.Errorf("access log tokens: got %v/%v, want 5/3 from the answer's usage", line["prompt_tokens"], line["completion_tokens"])
	}
}

// An answer relayed as it came keeps its length: a large one (an
// embeddings answer) is not turned into a chunked one; and a HEAD is
// answered with the upstream's headers and no body, not taken for an
// answer cut short.
func TestAnswerLengthKeptAndHeadRelayed(t *testing.T) {
	t.Parallel()
	big := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[` + strings.Repeat("0.0123456789,", 4000) + `0]}],"usage":{"prompt_tokens":5,"total_tokens":5}}`
	rec := newRecorder()
	up := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, c call) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = io.WriteString(w, big)
	})
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	resp, body := do(t, gw.request(t, http.MethodPost, "/openai/deployments/emb/embeddings?api-version=2024-02-01", []byte(`{"input":"hi"}`)))
	if resp.StatusCode != 200 || string(body) != big {
		t.Fatalf("got %d and %d bytes, want 200 and the %d-byte answer", resp.StatusCode, len(body), len(big))
	}
	if resp.ContentLength != int64(len(big)) || len(resp.TransferEncoding) > 0 {
		t.Errorf("Content-Length %d, Transfer-Encoding %v: want the upstream's length %d, not chunked", resp.ContentLength, resp.TransferEncoding, len(big))
	}
	resp, body = do(t, gw.request(t, http.MethodHead, chatPath, nil))
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD: got %d with %d bytes, want 200 and no body", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("X-Llmgate-Attempts"); got != "1" {
		t.Errorf("HEAD: X-Llmgate-Attempts %q, want 1 (trail %q)", got, resp.Header.Get("X-Llmgate-Trail"))
	}
}

// A backend refusing the gateway's credential is never passed on as the
// client's own 401 (an SDK would report the client's key as wrong): the
// client gets a 502 that says whose credential it was.
func TestBackendCredentialRefusedIsNotTheClients401(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", respond(http.StatusUnauthorized, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`))
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	resp, body := gw.chat(t)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d %s, want 502", resp.StatusCode, body)
	}
	if e := decodeError(t, body); e.Error.Code != "backend_auth_failed" || !strings.Contains(e.Error.Message, "Backend a") {
		t.Errorf("error: got %+v, want backend_auth_failed naming backend a", e.Error)
	}
}

// A request body sent with Content-Encoding gzip or deflate is decoded: the
// gateway reads the model from it (an OpenAI-style path needs one) and the
// upstream gets it plain. Other encodings, bad data and a body that decodes
// past max_body_bytes are refused in the JSON error shape.
func TestCompressedRequestBodiesAreDecoded(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry+"max_body_bytes: 4096\n")
	plain := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"max_tokens":16}`)
	var gz, zl bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	dw := zlib.NewWriter(&zl)
	dw.Write(plain)
	dw.Close()
	var bomb bytes.Buffer
	bw := gzip.NewWriter(&bomb)
	bw.Write(bytes.Repeat([]byte(" "), 1<<20))
	bw.Close()
	for _, tc := range []struct {
		name, encoding string
		body           []byte
		status         int
		code           string
	}{
		{"gzip", "gzip", gz.Bytes(), http.StatusOK, ""},
		{"deflate", "deflate", zl.Bytes(), http.StatusOK, ""},
		{"identity", "identity", plain, http.StatusOK, ""},
		{"brotli", "br", gz.Bytes(), http.StatusUnsupportedMediaType, "unsupported_content_encoding"},
		{"not gzip", "gzip", plain, http.StatusBadRequest, "invalid_body"},
		{"bomb", "gzip", bomb.Bytes(), http.StatusRequestEntityTooLarge, "request_too_large"},
	} {
		before := len(rec.Calls())
		req := gw.request(t, http.MethodPost, "/v1/chat/completions", tc.body)
		req.Header.Set("Content-Encoding", tc.encoding)
		resp, body := do(t, req)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
			continue
		}
		if tc.status != http.StatusOK {
			if e := decodeError(t, body); e.Error.Code != tc.code {
				t.Errorf("%s: code %q, want %q", tc.name, e.Error.Code, tc.code)
			}
			continue
		}
		calls := rec.Calls()
		if len(calls) != before+1 {
			t.Fatalf("%s: %d upstream calls, want 1", tc.name, len(calls)-before)
		}
		c := calls[len(calls)-1]
		if !bytes.Equal(c.Body, plain) || c.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: upstream got %q with Content-Encoding %q, want the plain body", tc.name, c.Body, c.Header.Get("Content-Encoding"))
		}
	}
}
