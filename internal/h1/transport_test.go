package h1_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/h1"
)

// fallback records that it was used.
type fallback struct{ n atomic.Int32 }

func (f *fallback) RoundTrip(*http.Request) (*http.Response, error) {
	f.n.Add(1)
	return &http.Response{StatusCode: 299, Body: http.NoBody, Header: http.Header{}}, nil
}

func newTransport(t *testing.T, o h1.Options) *h1.Transport {
	t.Helper()
	if o.Fallback == nil {
		o.Fallback = &fallback{}
	}
	tr := h1.New(o)
	t.Cleanup(tr.Close)
	return tr
}

// countingServer is an httptest server that counts the connections it accepted.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func post(t *testing.T, ctx context.Context, tr http.RoundTripper, u, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return tr.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return string(b)
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(b)) {
			http.Error(w, "bad request framing", 400)
			return
		}
		if r.URL.Query().Get("chunked") == "1" {
			w.Write([]byte("echo:"))
			w.(http.Flusher).Flush() // no Content-Length: chunked
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)+5))
			w.Write([]byte("echo:"))
		}
		w.Write(b)
	})
	tr := newTransport(t, h1.Options{})
	for i := range 20 {
		q := ""
		if i%2 == 1 {
			q = "?chunked=1"
		}
		resp, err := post(t, context.Background(), tr, srv.URL+"/v1/chat"+q, fmt.Sprintf(`{"n":%d}`, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, want := readAll(t, resp), fmt.Sprintf(`echo:{"n":%d}`, i); resp.StatusCode != 200 || got != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, got, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential requests used %d connections, want 1", n)
	}
}

func TestNoBodyAnswersReleaseTheConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Length", "10")
	})
	tr := newTransport(t, h1.Options{})
	u := srv.URL + "/x"
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(m, u, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("X-Method") != m {
			t.Fatalf("%s: answer for %q", m, resp.Header.Get("X-Method"))
		}
		if s := readAll(t, resp); s != "" {
			t.Fatalf("%s: body %q", m, s)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("used %d connections, want 1", n)
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if n := tr.IdleConns("127.0.0.1:" + port); n != 1 {
		t.Fatalf("idle connections = %d, want 1", n)
	}
}

func TestConnectionCloseIsHonoured(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	tr := newTransport(t, h1.Options{})
	for range 3 {
		resp, err := post(t, context.Background(), tr, srv.URL, "{}")
		if err != nil {
			t.Fatal(err)
		}
		if s := readAll(t, resp); s != "bye" {
			t.Fatalf("body %q", s)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("used %d connections, want 3 (one per request)", n)
	}
}

func TestEarlyCloseOfAStreamDoesNotDrainIt(t *testing.T) {
	stop := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "data: {}\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	defer close(stop)
	tr := newTransport(t, h1.Options{})
	resp, err := post(t, context.Background(), tr, srv.URL, `{"stream":true}`)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: {}\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	done := make(chan struct{})
	go func() { resp.Body.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close on an endless stream blocked (it must not drain)")
	}
	if _, err := resp.Body.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after Close succeeded")
	}
	// The broken connection is not reused.
	resp, err = post(t, context.Background(), tr, srv.URL+"/again", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := conns.Load(); n != 2 {
		t.Fatalf("used %d connections, want 2", n)
	}
}

func TestCancelInterruptsHeaderWaitAndBodyRead(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := newTransport(t, h1.Options{})

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := post(t, ctx, tr, srv.URL+"/head", "{}")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting for headers: err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	resp, err := post(t, ctx, tr, srv.URL+"/body", "{}")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "data: 1\n\n" {
		t.Fatalf("first read %q, %v", buf[:n], err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading the body: err %v, want context.Canceled", err)
	}
	resp.Body.Close()
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	tr := newTransport(t, h1.Options{ResponseHeaderTimeout: 100 * time.Millisecond})
	_, err := post(t, context.Background(), tr, srv.URL+"/slow", "{}")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v, want a timeout", err)
	}
	// The timeout does not outlive its request: a slower body read is fine.
	resp, err := post(t, context.Background(), tr, srv.URL+"/fast", "{}")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if s := readAll(t, resp); s != "ok" {
		t.Fatalf("body %q", s)
	}
}

// rawServer is an upstream that answers by hand: for every connection,
// answer gets the connection and the request read from it, and the
// connection closes when answer returns. It returns the server's base URL.
func rawServer(t *testing.T, answer func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				answer(c, req)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// oneShotServer answers each request and then closes the connection
// without saying so (no Connection: close), like an upstream whose idle
// timeout is shorter than ours.
func oneShotServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var served atomic.Int32
	u := rawServer(t, func(c net.Conn, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		served.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	return u, &served
}

func TestAConnectionTheUpstreamClosedIsNotUsed(t *testing.T) {
	u, served := oneShotServer(t)
	tr := newTransport(t, h1.Options{})
	for i := range 5 {
		resp, err := post(t, context.Background(), tr, u, "{}")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if s := readAll(t, resp); s != "ok" {
			t.Fatalf("request %d: body %q", i, s)
		}
		time.Sleep(20 * time.Millisecond) // the upstream's close arrives
	}
	if n := served.Load(); n != 5 {
		t.Fatalf("upstream served %d, want 5 (each exactly once)", n)
	}
}

func TestInterimResponsesAreSkipped(t *testing.T) {
	u := rawServer(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
			"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
		time.Sleep(100 * time.Millisecond)
	})
	tr := newTransport(t, h1.Options{})
	resp, err := post(t, context.Background(), tr, u, "{}")
	if err != nil {
		t.Fatal(err)
	}
	if s := readAll(t, resp); resp.StatusCode != 201 || s != "done" {
		t.Fatalf("%d %q, want 201 done", resp.StatusCode, s)
	}
}

func TestHeadersThatCouldSplitTheRequestAreRefused(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := newTransport(t, h1.Options{})
	for _, h := range []http.Header{
		{"X-A": {"ok\r\nX-Injected: 1"}},
		{"X-A": {"a\nb"}},
		{"X-A\r\nX-B": {"1"}},
		{"X A": {"1"}},
		{"": {"1"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		req.Header = h
		if _, err := tr.RoundTrip(req); err == nil {
			t.Fatalf("header %q was sent", h)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	req.Host = "a\r\nb"
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("a Host with CRLF was sent")
	}
	if n := conns.Load(); n > 1 {
		t.Fatalf("%d connections", n)
	}
}

func TestHopByHopAndFramingHeadersAreOurs(t *testing.T) {
	got := make(chan http.Header, 1)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Set("X-Body", string(b))
		h.Set("X-Host", r.Host)
		got <- h
	})
	tr := newTransport(t, h1.Options{})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/p?q=1", strings.NewReader("hello"))
	req.Header = http.Header{
		"Content-Length":    {"999"},
		"Transfer-Encoding": {"chunked"},
		"Connection":        {"upgrade"},
		"Upgrade":           {"websocket"},
		"Expect":            {"100-continue"},
		"X-Keep":            {"1", "2"},
	}
	req.Header["TrAnsFer-EnCoding"] = []string{"chunked"} // not canonical: still ours
	req.Host = "upstream.example"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	if h.Get("X-Body") != "hello" || h.Get("X-Host") != "upstream.example" || strings.Join(h["X-Keep"], ",") != "1,2" {
		t.Fatalf("upstream saw %v", h)
	}
	for _, k := range []string{"Transfer-Encoding", "Upgrade", "Expect"} {
		if h.Get(k) != "" {
			t.Fatalf("%s forwarded: %v", k, h)
		}
	}
}

func TestLargeBodiesAreStreamed(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	tr := newTransport(t, h1.Options{})
	body := bytes.Repeat([]byte("x"), 3<<20)
	closed := &closeRecorder{Reader: bytes.NewReader(body)}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, closed)
	req.ContentLength = int64(len(body))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if s := readAll(t, resp); s != fmt.Sprint(len(body)) {
		t.Fatalf("upstream read %s bytes, want %d", s, len(body))
	}
	if !closed.closed.Load() {
		t.Fatal("the request body was not closed")
	}
}

func TestWhatIsNotPlainHTTPGoesToTheFallback(t *testing.T) {
	fb := &fallback{}
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	proxied := srv.Listener.Addr().String()
	tr := newTransport(t, h1.Options{Fallback: fb, Proxy: func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "via-proxy.test" {
			return url.Parse("http://proxy.test:3128")
		}
		return nil, nil
	}})
	for _, u := range []string{"https://" + proxied + "/", "http://via-proxy.test/", "http://user:pw@" + proxied + "/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 299 {
			t.Fatalf("%s: %v %v", u, resp, err)
		}
	}
	// A body of unknown length too (this transport writes Content-Length only).
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader("x")))
	req.ContentLength = -1
	if resp, err := tr.RoundTrip(req); err != nil || resp.StatusCode != 299 {
		t.Fatalf("unknown length: %v %v", resp, err)
	}
	if n := fb.n.Load(); n != 4 {
		t.Fatalf("fallback used %d times, want 4", n)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("direct connections: %d", n)
	}
}

func TestClosedTransportRefuses(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := newTransport(t, h1.Options{})
	tr.Close()
	if _, err := post(t, context.Background(), tr, srv.URL, "{}"); err == nil {
		t.Fatal("a closed transport sent a request")
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	tr := newTransport(t, h1.Options{MaxIdleConnsPerHost: 4})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				want := fmt.Sprintf("%d-%d", g, i)
				req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(want))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("got %q (%v), want %q", b, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("800 requests from 16 goroutines over %d connections (4 kept idle)", conns.Load())
}

func TestEndlessResponseHeadersAreCut(t *testing.T) {
	u := rawServer(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := []byte("X-Filler: " + strings.Repeat("y", 1000) + "\r\n")
		for range 4096 { // 4 MiB of headers, never ending the head
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	})
	tr := newTransport(t, h1.Options{})
	_, err := post(t, context.Background(), tr, u, "{}")
	if err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") || !errors.Is(err, h1.ErrBadResponse) {
		t.Fatalf("err %v, want the head cut at 1 MiB, as a bad response", err)
	}
}

// TestABadAnswerIsNotAConnectionFailure: an answer that is not HTTP/1.1
// is an ErrBadResponse (the upstream was reached); a connection that ends
// before an answer is not.
func TestABadAnswerIsNotAConnectionFailure(t *testing.T) {
	for _, tc := range []struct {
		answer string
		bad    bool
	}{
		{"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", true},
		{"SSH-2.0-OpenSSH_9.2\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", true},
		{"HTTP/1.1 200 OK\r\nContent-Le", false}, // cut: the connection's failure
		{"", false},
	} {
		u := rawServer(t, func(c net.Conn, _ *http.Request) { io.WriteString(c, tc.answer) })
		tr := newTransport(t, h1.Options{})
		resp, err := post(t, context.Background(), tr, u, "{}")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%q: no error", tc.answer)
		}
		if errors.Is(err, h1.ErrBadResponse) != tc.bad {
			t.Errorf("%q: %v; bad response %v, want %v", tc.answer, err, !tc.bad, tc.bad)
		}
	}
}

func TestUnsolicitedBytesRetireTheConnection(t *testing.T) {
	var conns atomic.Int32
	u := rawServer(t, func(c net.Conn, req *http.Request) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			io.Copy(io.Discard, req.Body)
			// An answer with garbage after it, as a broken upstream might send.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbogus")
			var err error
			if req, err = http.ReadRequest(br); err != nil {
				return
			}
		}
	})
	tr := newTransport(t, h1.Options{})
	for i := range 3 {
		resp, err := post(t, context.Background(), tr, u, "{}")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if s := readAll(t, resp); s != "ok" {
			t.Fatalf("request %d: body %q, want ok (never the unsolicited answer)", i, s)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (none reused after unsolicited bytes)", n)
	}
}

// closeRecorder is a request body that records its Close.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

// TestBodyWaitsForBytesWithoutReadingThem: a response body waits until the
// upstream sends (stream.Waiter), leaves the bytes for Read, returns at
// once when the body is over, and a cancelled request ends the wait.
func TestBodyWaitsForBytesWithoutReadingThem(t *testing.T) {
	next := make(chan string)
	u := rawServer(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for s := range next {
			io.WriteString(c, s)
		}
	})
	tr := newTransport(t, h1.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := post(t, ctx, tr, u, "{}")
	if err != nil {
		t.Fatal(err)
	}
	w, ok := resp.Body.(interface{ Wait() error })
	if !ok {
		t.Fatalf("body %T has no Wait", resp.Body)
	}
	waited := make(chan error, 1)
	go func() { waited <- w.Wait() }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v before the upstream sent anything", err)
	case <-time.After(50 * time.Millisecond):
	}
	next <- "5\r\nhello\r\n"
	if err := <-waited; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	buf := make([]byte, 16)
	if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read after Wait: %q %v", buf[:n], err)
	}
	next <- "0\r\n\r\n"
	close(next)
	if n, err := resp.Body.Read(buf); err != io.EOF || n != 0 {
		t.Fatalf("end: %d %v, want EOF", n, err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("Wait on a finished body: %v", err)
	}

	// A cancelled request ends a wait.
	quiet := make(chan struct{})
	u = rawServer(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		<-quiet
	})
	t.Cleanup(func() { close(quiet) })
	resp, err = post(t, ctx, tr, u, "{}")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := resp.Body.(interface{ Wait() error }).Wait(); err == nil {
		t.Fatal("Wait after cancel: nil error")
	}
}

// TestChunkedAnswersKeepOrRetireTheConnection: a chunked answer read to its
// end (extensions and a trailer included) leaves the connection ready for
// the next request; one whose framing breaks ends in an error and retires
// it, so the next request gets a new connection.
func TestChunkedAnswersKeepOrRetireTheConnection(t *testing.T) {
	answers := []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"f;n=1\r\ndata: {\"a\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\nX-Checksum: 7\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", // no CRLF after the data
	}
	var conns, served atomic.Int32
	u := rawServer(t, func(c net.Conn, req *http.Request) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, answers[int(served.Add(1)-1)%len(answers)])
			var err error
			if req, err = http.ReadRequest(br); err != nil {
				return
			}
		}
	})
	tr := newTransport(t, h1.Options{})
	for i, want := range []string{"data: {\"a\":1}\n\ndata: [DONE]\n\n", "ok", "", "data: {\"a\":1}\n\ndata: [DONE]\n\n"} {
		resp, err := post(t, context.Background(), tr, u, "{}")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if i == 2 {
			if err == nil || string(data) != "hello" {
				t.Fatalf("broken framing: %q, %v; want hello and an error", data, err)
			}
			continue
		}
		if err != nil || string(data) != want {
			t.Fatalf("request %d: %q, %v; want %q", i, data, err, want)
		}
		if i == 0 && resp.Trailer.Get("X-Checksum") != "7" {
			t.Fatalf("trailer %v, want X-Checksum: 7", resp.Trailer)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (one kept across two chunked answers, a new one after the broken one)", n)
	}
}

// TestExchangeSendsALargeRequestAndEndsOnCancel: a request sent in one
// write (its body inline, up to 256 KiB) goes out inside the read of its
// answer, and the answer of an upstream that reads it late is read; a
// request whose upstream never reads it ends with the context's error once
// cancelled. (On loopback the kernel takes 250 KiB at once; a write that
// must wait for room is TestExchangeWaitsForRoomAndTimesTheAnswerFromTheWrite,
// on sockets with small buffers.)
func TestExchangeSendsALargeRequestAndEndsOnCancel(t *testing.T) {
	hold := make(chan struct{})
	u := rawServer(t, func(c net.Conn, req *http.Request) {
		if req.URL.Path == "/stuck" {
			<-hold // reads nothing: the client's write must wait
			return
		}
		time.Sleep(100 * time.Millisecond) // the request waits in the kernel's buffers meanwhile
		n, _ := io.Copy(io.Discard, req.Body)
		// Connection: close, as rawServer closes after one answer: the
		// stuck request below must not be sent on this connection while
		// its close is still on the way (a reset, not the cancellation).
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%d", len(fmt.Sprint(n)), n)
	})
	t.Cleanup(func() { close(hold) })
	tr := newTransport(t, h1.Options{})
	body := strings.Repeat("x", 250<<10)
	resp, err := post(t, context.Background(), tr, u+"/slow", body)
	if err != nil {
		t.Fatal(err)
	}
	if s := readAll(t, resp); s != fmt.Sprint(len(body)) {
		t.Fatalf("upstream read %s bytes, want %d", s, len(body))
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = post(t, ctx, tr, u+"/stuck", strings.Repeat("y", 250<<10))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

// TestExchangeSeesAnAnswerThatCameBeforeTheRequestWasRead: an upstream that
// answers (and closes) as soon as the head arrives, before reading the
// body, is read as net/http reads it: the answer, not an error.
func TestExchangeSeesAnAnswerThatCameBeforeTheRequestWasRead(t *testing.T) {
	u := rawServer(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
	})
	tr := newTransport(t, h1.Options{})
	for range 20 {
		resp, err := post(t, context.Background(), tr, u, strings.Repeat("z", 1000))
		if err != nil {
			t.Fatal(err)
		}
		if s := readAll(t, resp); resp.StatusCode != 413 || s != "big" {
			t.Fatalf("%d %q", resp.StatusCode, s)
		}
	}
}

// TestAResetAnswerIsAnError: an upstream that resets the connection instead
// of answering gives the request an error, on a new connection and on a
// kept-alive one alike.
func TestAResetAnswerIsAnError(t *testing.T) {
	var n atomic.Int32
	u := rawServer(t, func(c net.Conn, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		if n.Add(1) == 1 { // the first request is answered and the connection kept
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			next, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			io.Copy(io.Discard, next.Body)
		}
		c.(*net.TCPConn).SetLinger(0) // close sends a reset
	})
	tr := newTransport(t, h1.Options{})
	resp, err := post(t, context.Background(), tr, u, "{}")
	if err != nil {
		t.Fatal(err)
	}
	if s := readAll(t, resp); s != "ok" {
		t.Fatalf("first answer %q", s)
	}
	for i := range 2 {
		if resp, err := post(t, context.Background(), tr, u, "{}"); err == nil {
			resp.Body.Close()
			t.Fatalf("request %d: answered %d, want an error", i, resp.StatusCode)
		}
	}
}

// TestACutRightAfterDataEndsTheBodyAtOnce: an upstream that sends an
// event and at once closes (a FIN) or resets the connection ends the body
// with an error right after the data, not after a wait for input that
// never comes. Both often reach the client in one wake-up of the poller,
// so a read that returned less than asked does not mean the socket is
// empty: a FIN or a reset may be queued behind the data, and no further
// wake-up will come for it (see the README's Performance section).
func TestACutRightAfterDataEndsTheBodyAtOnce(t *testing.T) {
	for _, reset := range []bool{false, true} {
		for try := range 20 {
			u := rawServer(t, func(c net.Conn, _ *http.Request) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				time.Sleep(2 * time.Millisecond) // the client waits for the body
				if reset {
					c.(*net.TCPConn).SetLinger(0)
				}
				io.WriteString(c, "5\r\nhello\r\n")
				c.Close()
			})
			tr := newTransport(t, h1.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			resp, err := post(t, ctx, tr, u, "{}")
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			start := time.Now()
			data, err := io.ReadAll(resp.Body)
			took := time.Since(start)
			cancel()
			resp.Body.Close()
			if string(data) != "hello" || err == nil || errors.Is(err, context.DeadlineExceeded) || took > time.Second {
				t.Fatalf("reset %v, try %d: %q, %v after %v; want the data, then the cut at once", reset, try, data, err, took.Round(time.Millisecond))
			}
		}
	}
}
