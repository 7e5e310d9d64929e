package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/logtest"
)

// ---------------------------------------------------------------------------
// Helpers (all prefixed srv so that they do not clash with the package).

// srvRun is one Server serving on a loopback listener.
type srvRun struct {
	addr string
	s    *Server
	done chan struct{} // closed when Serve returned
	err  error         // what Serve returned, valid after done
}

// srvStartRun starts a Server for h on 127.0.0.1; opts adjust it before
// Serve. Cleanup closes it and checks that Serve returns ErrServerClosed.
func srvStartRun(t testing.TB, h http.Handler, opts ...func(*Server)) *srvRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	for _, o := range opts {
		o(s)
	}
	r := &srvRun{addr: ln.Addr().String(), s: s, done: make(chan struct{})}
	go func() {
		r.err = s.Serve(ln)
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		select {
		case <-r.done:
			if !errors.Is(r.err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", r.err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return within 5s of Close")
		}
	})
	return r
}

// srvStart starts a Server for h and returns its address.
func srvStart(t testing.TB, h http.Handler, opts ...func(*Server)) (string, *Server) {
	t.Helper()
	r := srvStartRun(t, h, opts...)
	return r.addr, r.s
}

// srvStartStd starts net/http's http.Server for h, configured like
// srvStart's Server for the differential tests.
func srvStartStd(t testing.TB, h http.Handler, opts ...func(*http.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	for _, o := range opts {
		o(s)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return ln.Addr().String()
}

// srvDial connects to addr with a 5s deadline on everything.
func srvDial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

func srvWrite(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// srvRead reads one response to a request with the given method, and its
// whole body.
func srvRead(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %s: %v", method, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %s: %v", method, err)
	}
	return resp, string(b)
}

// srvIsReset reports whether err is the peer resetting the connection
// (which a closing server may cause when it leaves input unread).
func srvIsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// srvExpectClosed asserts that the server closes the connection within d
// (an end of stream or a reset), with nothing more to read.
func srvExpectClosed(t testing.TB, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := br.Peek(1)
	switch {
	case err == nil:
		rest, _ := br.Peek(br.Buffered())
		t.Fatalf("connection still sends data (%q), want it closed", rest)
	case errors.Is(err, io.EOF) || srvIsReset(err):
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v, want it closed", d)
	default:
		t.Fatalf("read %q: %v, want the connection closed", b, err)
	}
}

// srvExpectRefusedOrClosed asserts that the server closes the connection
// within d, after at most an error answer (4xx/5xx).
func srvExpectRefusedOrClosed(t testing.TB, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	if _, err := br.Peek(1); err == nil {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("unparseable answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 400 {
			t.Fatalf("answer %d %q, want at most an error answer", resp.StatusCode, b)
		}
	}
	srvExpectClosed(t, c, br, d)
}

// srvExpectQuiet asserts that nothing arrives on the connection for d (used
// to check that no stray body bytes follow an answer).
func srvExpectQuiet(t testing.TB, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := br.Peek(1)
	if err == nil {
		rest, _ := br.Peek(br.Buffered())
		t.Fatalf("unexpected bytes after the answer: %q", rest)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q: %v, want the connection open and quiet", b, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
}

// srvReadRawHead reads a response's status line and header fields as they
// are on the wire.
func srvReadRawHead(t testing.TB, br *bufio.Reader) (string, textproto.MIMEHeader) {
	t.Helper()
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("status line: %v", err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	return line, h
}

// srvWait waits for ch or fails after d.
func srvWait[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		panic("unreachable")
	}
}

// srvReleaser is a channel closed once, by the test or its cleanup, so that
// a blocked handler always returns.
func srvReleaser(t testing.TB) (ch chan struct{}, release func()) {
	ch = make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return ch, release
}

// srvDo sends req with client and returns the status and the whole body.
func srvDo(t testing.TB, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, string(b)
}

// srvClient is a net/http client that does not share connections with
// other tests.
func srvClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func srvBody(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

func srvDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d %x", len(b), sum[:8])
}

// srvDigestHandler answers the length and hash of the request body.
func srvDigestHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.WriteString(w, srvDigest(b))
}

// ---------------------------------------------------------------------------
// Keep-alive and pipelining.

func TestServerKeepAliveManyRequests(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, r.RemoteAddr)
	}))
	c, br := srvDial(t, addr)
	for i := range 20 {
		srvWrite(t, c, fmt.Sprintf("GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		resp, body := srvRead(t, br, "GET")
		want := fmt.Sprintf("GET /r%d %s", i, c.LocalAddr())
		if resp.StatusCode != 200 || body != want || resp.Close {
			t.Fatalf("request %d: %d %q close=%v, want 200 %q on a kept connection", i, resp.StatusCode, body, resp.Close, want)
		}
	}
	// The same connection also carries POSTs with bodies.
	for i := range 5 {
		body := strings.Repeat("p", 100*i)
		srvWrite(t, c, fmt.Sprintf("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		if resp, got := srvRead(t, br, "POST"); resp.StatusCode != 200 || !strings.HasPrefix(got, "POST /p ") {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, got)
		}
	}
}

func TestServerPipelinedRequests(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s [%s]", r.Method, r.URL.Path, b)
	}))
	c, br := srvDial(t, addr)
	srvWrite(t, c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"+
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"+
		"HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /e HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []struct{ method, body string }{
		{"GET", "GET /a []"}, {"POST", "POST /b [xyz]"}, {"POST", "POST /c [hi]"}, {"HEAD", ""}, {"GET", "GET /e []"},
	} {
		resp, body := srvRead(t, br, want.method)
		if resp.StatusCode != 200 || body != want.body {
			t.Fatalf("%s: %d %q, want 200 %q", want.method, resp.StatusCode, body, want.body)
		}
	}
	srvExpectQuiet(t, c, br, 50*time.Millisecond)
}

// A request pipelined while the previous handler still runs (long enough
// for the server to watch the connection) is kept and answered in order.
func TestServerPipelinedWhileHandlerRuns(t *testing.T) {
	release, releaseFn := srvReleaser(t)
	started := make(chan struct{}, 4)
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			if err := r.Context().Err(); err != nil {
				fmt.Fprintf(w, "context: %v", err)
				return
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, br := srvDial(t, addr)
	srvWrite(t, c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	srvWait(t, started, 2*time.Second, "the slow handler")
	time.Sleep(60 * time.Millisecond) // past the server's watch delay
	srvWrite(t, c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(30 * time.Millisecond)
	releaseFn()
	for _, want := range []string{"/slow", "/next"} {
		resp, body := srvRead(t, br, "GET")
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
}

// Many connections at once, with handlers fast and slow (past the delay
// after which the server watches a connection), each get their own answers.
func TestServerConcurrentConnections(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if d, _ := time.ParseDuration(r.URL.Query().Get("d")); d > 0 {
			time.Sleep(d)
		}
		fmt.Fprintf(w, "%s|%s", r.URL.Query().Get("id"), b)
	}))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			for j := range 8 {
				id := fmt.Sprintf("%d-%d", i, j)
				body := strings.Repeat(id, j)
				fmt.Fprintf(c, "POST /?id=%s&d=%dms HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", id, (i*7+j*13)%50, len(body), body)
				resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
				if err != nil {
					errs <- fmt.Errorf("%s: %v", id, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil || string(b) != id+"|"+body {
					errs <- fmt.Errorf("%s: %q %v, want %q", id, b, err, id+"|"+body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// ---------------------------------------------------------------------------
// Response framing.

func TestServerResponseFraming(t *testing.T) {
	releases := map[string]chan struct{}{}
	releaseFns := map[string]func(){}
	for _, p := range []string{"/flusher", "/controller"} {
		releases[p], releaseFns[p] = srvReleaser(t)
	}
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cl":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/small":
			io.WriteString(w, "hello, world")
		case "/html":
			io.WriteString(w, "<!DOCTYPE html><html><body>hi</body></html>")
		case "/typed":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"a":1}`)
		case "/empty":
		case "/large":
			w.Write(srvBody(300 << 10))
		case "/flusher", "/controller":
			io.WriteString(w, "a")
			if r.URL.Path == "/flusher" {
				w.(http.Flusher).Flush()
			} else if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("ResponseController.Flush: %v", err)
			}
			select {
			case <-releases[r.URL.Path]:
			case <-time.After(5 * time.Second):
				return
			}
			io.WriteString(w, "b")
		}
	}))
	c, br := srvDial(t, addr)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		srvWrite(t, c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		return srvRead(t, br, "GET")
	}
	checkDate := func(resp *http.Response) {
		t.Helper()
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil || time.Since(d).Abs() > time.Minute {
			t.Errorf("Date %q: %v, want the current time", resp.Header.Get("Date"), err)
		}
	}

	resp, body := get("/cl")
	if resp.ContentLength != 5 || resp.TransferEncoding != nil || body != "hello" {
		t.Errorf("/cl: length %d %v %q, want Content-Length 5", resp.ContentLength, resp.TransferEncoding, body)
	}
	checkDate(resp)

	resp, body = get("/small")
	if resp.ContentLength != int64(len("hello, world")) || resp.TransferEncoding != nil || body != "hello, world" {
		t.Errorf("/small: length %d %v %q, want a Content-Length and no chunking", resp.ContentLength, resp.TransferEncoding, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("/small: Content-Type %q, want the sniffed text/plain; charset=utf-8", ct)
	}
	checkDate(resp)

	resp, _ = get("/html")
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("/html: Content-Type %q, want the sniffed text/html; charset=utf-8", ct)
	}
	resp, _ = get("/typed")
	if ct := resp.Header["Content-Type"]; len(ct) != 1 || ct[0] != "application/json" {
		t.Errorf("/typed: Content-Type %q, want the handler's only", ct)
	}
	resp, body = get("/empty")
	if resp.StatusCode != 200 || resp.ContentLength != 0 || body != "" || resp.Header.Get("Content-Type") != "" {
		t.Errorf("/empty: %d length %d %q type %q, want 200 with Content-Length 0 and no Content-Type",
			resp.StatusCode, resp.ContentLength, body, resp.Header.Get("Content-Type"))
	}
	resp, body = get("/large")
	if body != string(srvBody(300<<10)) {
		t.Errorf("/large: body of %d bytes differs from the one written", len(body))
	}

	for _, path := range []string{"/flusher", "/controller"} {
		srvWrite(t, c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.ContentLength != -1 {
			t.Errorf("%s: Transfer-Encoding %v length %d, want chunked", path, resp.TransferEncoding, resp.ContentLength)
		}
		checkDate(resp)
		var first [1]byte
		if _, err := io.ReadFull(resp.Body, first[:]); err != nil || first[0] != 'a' {
			t.Fatalf("%s: first flushed byte %q: %v, want %q before the handler returns", path, first[:], err, "a")
		}
		releaseFns[path]()
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "b" {
			t.Fatalf("%s: rest %q: %v, want %q", path, rest, err, "b")
		}
	}
	// The connection is still usable after the streams.
	if resp, body := get("/small"); resp.StatusCode != 200 || body != "hello, world" {
		t.Errorf("after streams: %d %q", resp.StatusCode, body)
	}
}

func TestServerHeadAndBodylessStatuses(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204", "/304":
			code, _ := strconv.Atoi(r.URL.Path[1:])
			w.WriteHeader(code)
			w.Write([]byte("must not be sent"))
			if r.URL.Query().Has("flush") {
				http.NewResponseController(w).Flush()
			}
			return
		case "/flush":
			io.WriteString(w, "streamed")
			http.NewResponseController(w).Flush()
			io.WriteString(w, " body")
			return
		}
		io.WriteString(w, "hello world")
	}))
	c, br := srvDial(t, addr)
	for _, path := range []string{"/", "/flush"} {
		srvWrite(t, c, "HEAD "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		status, h := srvReadRawHead(t, br)
		if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
			t.Errorf("HEAD %s: %q", path, status)
		}
		if te := h.Get("Transfer-Encoding"); te != "" {
			t.Errorf("HEAD %s: Transfer-Encoding %q on a bodiless answer", path, te)
		}
		srvExpectQuiet(t, c, br, 100*time.Millisecond)
		srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != "hello world" {
			t.Fatalf("GET after HEAD %s: %d %q", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/204", "/304", "/204?flush", "/304?flush"} {
		srvWrite(t, c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		status, h := srvReadRawHead(t, br)
		if !strings.HasPrefix(status, "HTTP/1.1 "+path[1:4]+" ") {
			t.Errorf("%s: status %q", path, status)
		}
		if te := h.Get("Transfer-Encoding"); te != "" {
			t.Errorf("%s: Transfer-Encoding %q", path, te)
		}
		if cl := h.Get("Content-Length"); cl != "" && cl != "0" {
			t.Errorf("%s: Content-Length %q", path, cl)
		}
		srvExpectQuiet(t, c, br, 100*time.Millisecond)
	}
	srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != "hello world" {
		t.Fatalf("GET after 204/304: %d %q", resp.StatusCode, body)
	}
}

// ---------------------------------------------------------------------------
// Connection management.

func TestServerHTTP10ClosesAfterAnswer(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		if r.URL.Path == "/flush" {
			http.NewResponseController(w).Flush()
			io.WriteString(w, " second")
		}
	}))
	for _, tc := range []struct{ path, body string }{{"/", "first"}, {"/flush", "first second"}} {
		c, br := srvDial(t, addr)
		// A second request after the first must not be answered.
		srvWrite(t, c, "GET "+tc.path+" HTTP/1.0\r\n\r\nGET /again HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("HTTP/1.0 %s: %v", tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != tc.body || resp.StatusCode != 200 {
			t.Fatalf("HTTP/1.0 %s: %d %q %v, want 200 %q", tc.path, resp.StatusCode, b, err, tc.body)
		}
		if resp.TransferEncoding != nil {
			t.Errorf("HTTP/1.0 %s: chunked answer to an HTTP/1.0 client", tc.path)
		}
		srvExpectClosed(t, c, br, 2*time.Second)
	}
}

func TestServerConnectionClose(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/handler-closes" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
		if r.URL.Query().Has("flush") {
			http.NewResponseController(w).Flush()
		}
	}))
	for _, tc := range []struct{ name, req string }{
		{"client", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"client-mixed-case", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n"},
		{"client-streamed", "GET /?flush HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"handler", "GET /handler-closes HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"handler-streamed", "GET /handler-closes?flush HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := srvDial(t, addr)
			srvWrite(t, c, tc.req+"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := srvRead(t, br, "GET")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			if !resp.Close || resp.Header.Get("Connection") != "" && !strings.EqualFold(resp.Header.Get("Connection"), "close") {
				t.Errorf("answer without Connection: close (Close=%v, Connection %q)", resp.Close, resp.Header.Get("Connection"))
			}
			if n := len(resp.Header.Values("Connection")); n > 1 {
				t.Errorf("%d Connection headers: %q", n, resp.Header.Values("Connection"))
			}
			srvExpectClosed(t, c, br, 2*time.Second)
		})
	}
}

// ---------------------------------------------------------------------------
// Panics.

func TestServerHandlerPanics(t *testing.T) {
	logs := &logtest.Buffer{}
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abort", "/boom":
			io.WriteString(w, "part")
			http.NewResponseController(w).Flush()
			if r.URL.Path == "/abort" {
				panic(http.ErrAbortHandler)
			}
			panic("boom-after-flush")
		case "/early":
			io.WriteString(w, "buffered, never sent")
			panic("boom-early")
		}
		io.WriteString(w, "fine")
	}), func(s *Server) { s.ErrorLog = log.New(logs, "", 0) })
	client := srvClient(t)

	for _, path := range []string{"/abort", "/boom"} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || string(b) != "part" {
			t.Errorf("%s: body %q, err %v; want %q then an error (the body cut)", path, b, err, "part")
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Logf("%s: body cut with %v", path, err)
		}

		// On the wire: the flushed part, no last chunk, then the close.
		c, br := srvDial(t, addr)
		srvWrite(t, c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err = http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("%s raw: %v", path, err)
		}
		b, err = io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("%s raw: body %q ended cleanly, want it cut", path, b)
		}
		srvExpectClosed(t, c, br, 2*time.Second)
	}

	// A panic before anything was sent: the connection closes, no answer.
	c, br := srvDial(t, addr)
	srvWrite(t, c, "GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if resp, err := http.ReadResponse(br, nil); err == nil {
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 500 {
			t.Errorf("/early: got %d %q, want no answer (or a 5xx)", resp.StatusCode, b)
		}
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("/early: connection neither answered nor closed")
	}

	// The server still serves.
	req, _ := http.NewRequest("GET", "http://"+addr+"/ok", nil)
	if _, b := srvDo(t, client, req); b != "fine" {
		t.Errorf("after panics: %q", b)
	}

	l := logs.String()
	if !strings.Contains(l, "boom-after-flush") || !strings.Contains(l, "boom-early") {
		t.Errorf("ErrorLog lacks the panics: %q", l)
	}
	if strings.Contains(l, http.ErrAbortHandler.Error()) {
		t.Errorf("ErrorLog has the http.ErrAbortHandler panic: %q", l)
	}
}

// ---------------------------------------------------------------------------
// Request bodies.

func TestServerRequestBodies(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(srvDigestHandler))
	client := srvClient(t)
	big := srvBody(1 << 20)

	t.Run("content-length-1MiB", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", bytes.NewReader(big))
		if status, b := srvDo(t, client, req); status != 200 || b != srvDigest(big) {
			t.Fatalf("%d %q, want %q", status, b, srvDigest(big))
		}
	})
	t.Run("chunked-1MiB-in-pieces", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			rest := big
			for i := 0; len(rest) > 0; i++ {
				n := min(len(rest), 1+(i*7919)%70000)
				if _, err := pw.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
		if status, b := srvDo(t, client, req); status != 200 || b != srvDigest(big) {
			t.Fatalf("%d %q, want %q", status, b, srvDigest(big))
		}
	})
	t.Run("raw-pieces", func(t *testing.T) {
		c, br := srvDial(t, addr)
		body := srvBody(10000)
		srvWrite(t, c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
		for _, p := range [][]byte{body[:1], body[1:4000], body[4000:]} {
			time.Sleep(15 * time.Millisecond)
			c.Write(p)
		}
		if resp, got := srvRead(t, br, "POST"); resp.StatusCode != 200 || got != srvDigest(body) {
			t.Fatalf("content-length in pieces: %d %q, want %q", resp.StatusCode, got, srvDigest(body))
		}
		// A chunked body cut everywhere, even inside a chunk's size line.
		raw := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n"
		for i := 0; i < len(raw); i += 9 {
			c.Write([]byte(raw[i:min(i+9, len(raw))]))
			time.Sleep(time.Millisecond)
		}
		want := srvDigest([]byte("helloabcdefghijklmnopqrstuvwxyz"))
		if resp, got := srvRead(t, br, "POST"); resp.StatusCode != 200 || got != want {
			t.Fatalf("chunked in pieces: %d %q, want %q", resp.StatusCode, got, want)
		}
	})
}

func TestServerExpectContinue(t *testing.T) {
	proceed, proceedFn := srvReleaser(t)
	started := make(chan struct{}, 1)
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "no")
			return
		}
		started <- struct{}{}
		select {
		case <-proceed:
		case <-time.After(5 * time.Second):
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Write(b)
	}))

	c, br := srvDial(t, addr)
	srvWrite(t, c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	srvWait(t, started, 2*time.Second, "the handler")
	srvExpectQuiet(t, c, br, 150*time.Millisecond) // no 100 Continue before the handler reads
	proceedFn()
	resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("got %v %v, want 100 Continue once the handler reads", resp, err)
	}
	srvWrite(t, c, "hello")
	if resp, body := srvRead(t, br, "POST"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("final answer %d %q, want 200 hello", resp.StatusCode, body)
	}

	// A handler that answers without reading: the client, which waits for a
	// 100 Continue without sending its body, still gets the answer.
	c, br = srvDial(t, addr)
	srvWrite(t, c, "POST /refuse HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	resp, body := srvRead(t, br, "POST")
	if resp.StatusCode != http.StatusForbidden || body != "no" {
		t.Fatalf("refusal: %d %q, want 403 no (and no 100 Continue)", resp.StatusCode, body)
	}
}

func TestServerUnreadRequestBody(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("read"))
		b := make([]byte, n)
		m, _ := io.ReadFull(r.Body, b)
		fmt.Fprintf(w, "read %q", b[:m])
	}))
	for _, tc := range []struct {
		name, framing, body string
	}{
		{"part-of-content-length", "Content-Length: 100", strings.Repeat("z", 100)},
		{"none-of-content-length", "Content-Length: 100", strings.Repeat("z", 100)},
		{"part-of-chunked", "Transfer-Encoding: chunked", "3\r\nzzz\r\n40\r\n" + strings.Repeat("z", 64) + "\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := "3"
			if strings.HasPrefix(tc.name, "none") {
				read = "0"
			}
			c, br := srvDial(t, addr)
			srvWrite(t, c, "POST /?read="+read+" HTTP/1.1\r\nHost: x\r\n"+tc.framing+"\r\n\r\n"+tc.body)
			resp, body := srvRead(t, br, "POST")
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "read ") {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			srvWrite(t, c, "GET /?read=0 HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != `read ""` {
				t.Fatalf("next request: %d %q", resp.StatusCode, body)
			}
		})
	}
	t.Run("large-unread", func(t *testing.T) {
		c, br := srvDial(t, addr)
		srvWrite(t, c, "POST /?read=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n")
		go func() {
			chunk := make([]byte, 64<<10)
			for range 64 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		resp, body := srvRead(t, br, "POST")
		if resp.StatusCode != 200 || body != `read ""` {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		// More than the server reads and drops is left: the connection
		// closes after the answer, and the answer says so (as net/http's),
		// so that a client's pool does not reuse it.
		if !resp.Close {
			t.Errorf("answer to a request with 4 MiB left unread: no Connection: close (header %v)", resp.Header)
		}
	})
	t.Run("large-unsent-is-not-waited-for", func(t *testing.T) {
		// The head says 3 MB come; none have: the answer goes at once.
		c, br := srvDial(t, addr)
		start := time.Now()
		srvWrite(t, c, "POST /?read=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n")
		resp, _ := srvRead(t, br, "POST")
		if took := time.Since(start); !resp.Close || took > 2*time.Second {
			t.Errorf("answer after %v, Connection: close %v; want it at once, closing", took, resp.Close)
		}
	})
	// Bodies the connection survives: one read to its length (without the
	// read that sees EOF, as io.ReadFull does), and a small one left
	// unread, which the server drops. The connection stays for the next.
	for _, tc := range []struct{ name, read, body string }{
		{"large-read-whole-keeps-the-connection", "1000000", strings.Repeat("z", 1000000)},
		{"small-unread-keeps-the-connection", "0", strings.Repeat("z", 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := srvDial(t, addr)
			srvWrite(t, c, "POST /?read="+tc.read+" HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(tc.body))+"\r\n\r\n"+tc.body)
			if resp, _ := srvRead(t, br, "POST"); resp.Close {
				t.Errorf("Connection: close, want the connection kept")
			}
			srvWrite(t, c, "GET /?read=0 HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != `read ""` {
				t.Fatalf("next request: %d %q", resp.StatusCode, body)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Invalid requests.

// srvExpectRejected sends raw (then a well-formed request that must not be
// answered) and wants status, then the connection closed.
func srvExpectRejected(t *testing.T, addr, raw string, status int) {
	t.Helper()
	c, br := srvDial(t, addr)
	srvWrite(t, c, raw+"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("%q: no answer: %v, want %d", raw, err, status)
	}
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%q: got %d %q (%v), want %d", raw, resp.StatusCode, b, err, status)
	}
	if !resp.Close {
		t.Errorf("%q: %d without Connection: close", raw, status)
	}
	srvExpectClosed(t, c, br, 2*time.Second)
}

func TestServerConflictingOrInvalidFraming(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(srvDigestHandler))
	for _, tc := range []struct{ name, raw string }{
		{"content-length-and-chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"chunked-and-content-length", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n"},
		{"content-length-letters", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"},
		{"content-length-negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
		{"content-length-plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"},
		{"content-length-two-values", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"content-length-list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd"},
	} {
		t.Run(tc.name, func(t *testing.T) { srvExpectRejected(t, addr, tc.raw, http.StatusBadRequest) })
	}
}

func TestServerMalformedRequests(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(srvDigestHandler))
	for _, tc := range []struct{ name, raw string }{
		{"garbage", "GARBAGE\r\n\r\n"},
		{"no-version", "GET /\r\n\r\n"},
		{"bad-version", "GET / HTTP/1.x\r\nHost: x\r\n\r\n"},
		{"no-host", "GET / HTTP/1.1\r\n\r\n"},
		{"two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"bad-host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"header-without-colon", "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"},
		{"space-before-colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"},
		{"control-in-value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"},
		{"bad-header-name", "GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n"},
		{"bad-uri", "GET  HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { srvExpectRejected(t, addr, tc.raw, http.StatusBadRequest) })
	}
}

func TestServerHeadTooLarge(t *testing.T) {
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(s *Server) { s.MaxHeaderBytes = 4096 })

	// Within the limit: served.
	c, br := srvDial(t, addr)
	srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\nX-Fill: "+strings.Repeat("f", 3000)+"\r\n\r\n")
	if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("3 KB head: %d %q", resp.StatusCode, body)
	}

	for _, tc := range []struct{ name, raw string }{
		{"one-long-header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n"},
		{"many-headers", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Many: 0123456789\r\n", 1000) + "\r\n"},
		{"long-uri", "GET /" + strings.Repeat("u", 20000) + " HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"second-request", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := srvDial(t, addr)
			go c.Write([]byte(tc.raw))
			if strings.HasPrefix(tc.name, "second") {
				if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("first request: %d %q", resp.StatusCode, body)
				}
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("got %d %q (%v), want 431", resp.StatusCode, b, err)
			}
			var e map[string]map[string]any
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("431 body %q is not JSON: %v", b, err)
			}
			inner, ok := e["error"]
			if !ok {
				t.Fatalf("431 body %q has no error object", b)
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := inner[k]; !ok {
					t.Errorf("431 body %q lacks error.%s", b, k)
				}
			}
			if m, _ := inner["message"].(string); m == "" {
				t.Errorf("431 body %q: empty message", b)
			}
			srvExpectClosed(t, c, br, 2*time.Second)
		})
	}
}

// ---------------------------------------------------------------------------
// The request as the handler sees it.

func TestServerRequestContextCanceledWhenClientLeaves(t *testing.T) {
	started := make(chan struct{}, 1)
	seen := make(chan error, 1)
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			seen <- r.Context().Err()
		case <-time.After(5 * time.Second):
			seen <- nil
		}
	}))
	for _, req := range []string{
		"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
	} {
		c, _ := srvDial(t, addr)
		srvWrite(t, c, req)
		srvWait(t, started, 2*time.Second, "the handler")
		c.Close()
		if err := srvWait(t, seen, 6*time.Second, "the handler's context"); err == nil {
			t.Errorf("%q: the context was not cancelled within 5s of the client closing", req)
		}
	}
}

// srvFields is what a handler saw of its request.
type srvFields struct {
	Method, RequestURI, Path, RawPath, RawQuery, Host, Proto, RemoteAddr string
	ContentLength                                                        int64
	Close                                                                bool
	XA                                                                   []string
}

func TestServerRequestFields(t *testing.T) {
	seen := make(chan srvFields, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- srvFields{r.Method, r.RequestURI, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Proto, r.RemoteAddr,
			r.ContentLength, r.Close, r.Header["X-A"]}
	})
	addr, _ := srvStart(t, h)
	std := srvStartStd(t, h)
	for _, raw := range []string{
		"GET /p/a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nx-a: 1\r\nX-A: 2\r\n\r\n",
		"GET http://h2.example/q%2Fr?z=1 HTTP/1.1\r\nHost: other\r\n\r\n",
		"DELETE /d HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"GET /old HTTP/1.0\r\n\r\n",
	} {
		var got [2]srvFields
		for i, a := range []string{addr, std} {
			c, br := srvDial(t, a)
			srvWrite(t, c, raw)
			got[i] = srvWait(t, seen, 2*time.Second, "the handler")
			if got[i].RemoteAddr != c.LocalAddr().String() {
				t.Errorf("%q: RemoteAddr %q, want %q", raw, got[i].RemoteAddr, c.LocalAddr())
			}
			got[i].RemoteAddr = ""
			srvRead(t, br, strings.Fields(raw)[0])
		}
		if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
			t.Errorf("%q:\n h1 saw       %+v\n net/http saw %+v", raw, got[0], got[1])
		}
	}
	// And the absolute values, for the first request.
	c, br := srvDial(t, addr)
	srvWrite(t, c, "GET /p/a%20b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
	f := srvWait(t, seen, 2*time.Second, "the handler")
	srvRead(t, br, "GET")
	want := srvFields{Method: "GET", RequestURI: "/p/a%20b?x=1", Path: "/p/a b", RawQuery: "x=1", Host: "example.com:8080",
		Proto: "HTTP/1.1", RemoteAddr: c.LocalAddr().String()}
	if fmt.Sprint(f) != fmt.Sprint(want) {
		t.Errorf("saw %+v, want %+v", f, want)
	}
}

func TestServerSetReadDeadline(t *testing.T) {
	type result struct{ setErr, readErr error }
	results := make(chan result, 1)
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res result
		res.setErr = http.NewResponseController(w).SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, res.readErr = io.ReadAll(r.Body)
		results <- res
	}))
	c, _ := srvDial(t, addr)
	srvWrite(t, c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	res := srvWait(t, results, 3*time.Second, "the body read to fail past the deadline")
	if res.setErr != nil {
		t.Errorf("SetReadDeadline: %v, want nil", res.setErr)
	}
	if res.readErr == nil {
		t.Errorf("a body read past the read deadline succeeded")
	} else if !errors.Is(res.readErr, os.ErrDeadlineExceeded) {
		t.Logf("body read error: %v", res.readErr)
	}
}

// A read deadline a handler sets for its body, and which passes while it
// works on after reading the whole body, does not lose the answer (as with
// net/http's http.Server).
func TestServerReadDeadlinePassingAfterBodyKeepsAnswer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		time.Sleep(150 * time.Millisecond) // work past the deadline
		fmt.Fprintf(w, "done %s", b)
	})
	for _, srv := range []struct{ name, addr string }{{"net/http", srvStartStd(t, h)}, {"h1", func() string { a, _ := srvStart(t, h); return a }()}} {
		c, br := srvDial(t, srv.addr)
		srvWrite(t, c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
		resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
		if err != nil {
			t.Errorf("%s: no answer: %v", srv.name, err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "done body" || err != nil {
			t.Errorf("%s: %d %q %v, want 200 %q", srv.name, resp.StatusCode, b, err, "done body")
		}
	}
}

// Content-Type is sniffed from the first bytes written whatever their
// size, and a HEAD answer carries the Content-Type its GET would have (as
// with net/http).
func TestServerSniffsContentType(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big-text":
			w.Write(bytes.Repeat([]byte("plain text "), 1000))
		case "/big-html":
			w.Write([]byte("<html><body>" + strings.Repeat("x", 20000) + "</body></html>"))
		default:
			io.WriteString(w, "<html><body>small</body></html>")
		}
	})
	addr, _ := srvStart(t, h)
	std := srvStartStd(t, h)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/big-text", "text/plain; charset=utf-8"},
		{"GET", "/big-html", "text/html; charset=utf-8"},
		{"GET", "/small", "text/html; charset=utf-8"},
		{"HEAD", "/small", "text/html; charset=utf-8"},
		{"HEAD", "/big-text", "text/plain; charset=utf-8"},
	} {
		for _, srv := range []struct{ name, addr string }{{"net/http", std}, {"h1", addr}} {
			c, br := srvDial(t, srv.addr)
			srvWrite(t, c, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, _ := srvRead(t, br, tc.method)
			if ct := resp.Header.Get("Content-Type"); ct != tc.want {
				t.Errorf("%s: %s %s: Content-Type %q, want %q", srv.name, tc.method, tc.path, ct, tc.want)
			}
		}
	}
}

// A client that half-closes its connection after its request (shutdown of
// its write side) still gets the answer of a handler that takes a while,
// as from net/http (whose request context is cancelled, but whose answer is
// still written).
func TestServerHalfClosedClientGetsAnswer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		time.Sleep(150 * time.Millisecond)
		fmt.Fprintf(w, "answer %s", b)
	})
	addr, _ := srvStart(t, h)
	std := srvStartStd(t, h)
	for _, srv := range []struct{ name, addr string }{{"net/http", std}, {"h1", addr}} {
		for _, raw := range []string{
			"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
		} {
			c, br := srvDial(t, srv.addr)
			srvWrite(t, c, raw)
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Errorf("%s: %q then half-close: no answer (%v)", srv.name, raw, err)
				continue
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(b), "answer") {
				t.Errorf("%s: %q then half-close: %d %q %v", srv.name, raw, resp.StatusCode, b, err)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Timeouts.

// srvExpect408 reads the answer to a request head that did not arrive
// within the server's ReadHeaderTimeout: 408 in the OpenAI error shape
// with Connection: close, then the connection closed.
func srvExpect408(t testing.TB, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("no answer: %v, want 408", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the 408's body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("got %d %q, want 408", resp.StatusCode, b)
	}
	if !resp.Close {
		t.Errorf("408 without Connection: close")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
		t.Fatalf("408 body %q: not an error object (%v)", b, err)
	}
	for k, want := range map[string]any{"type": "invalid_request_error", "code": "request_timeout", "param": nil} {
		if got, ok := e.Error[k]; !ok || got != want {
			t.Errorf("408 body %q: got error.%s %v, want %v", b, k, got, want)
		}
	}
	if m, _ := e.Error["message"].(string); m == "" {
		t.Errorf("408 body %q: empty message", b)
	}
	srvExpectClosed(t, c, br, 2*time.Second)
}

// srvTrickle writes head a byte every 20ms, then "s" bytes, until the
// connection fails or the test ends.
func srvTrickle(t testing.TB, c net.Conn, head string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			b := "s"
			if i < len(head) {
				b = head[i : i+1]
			}
			if _, err := c.Write([]byte(b)); err != nil {
				return
			}
		}
	}()
}

func TestServerReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	const limit = 200 * time.Millisecond
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	addr, _ := srvStart(t, ok, func(s *Server) { s.ReadHeaderTimeout = limit; s.IdleTimeout = 5 * time.Second })
	early := func(t *testing.T, start time.Time) {
		t.Helper()
		if d := time.Since(start); d < limit-50*time.Millisecond {
			t.Errorf("closed after %v, before the %v ReadHeaderTimeout", d, limit)
		}
	}

	// A head the time limit cuts, wherever it stops, is answered 408 (not
	// 400: the bytes that came were no malformed request).
	for _, tc := range []struct{ name, sent string }{
		{"one-byte", "G"},
		{"half-a-head", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"mid-request-line", "GET /pa"},
		{"mid-header-name", "GET / HTTP/1.1\r\nHost: x\r\nX-Fo"},
		{"mid-header-value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b"},
		{"before-the-last-lf", "GET / HTTP/1.1\r\nHost: x\r\n\r"},
	} {
		t.Run("stalled-"+tc.name, func(t *testing.T) {
			t.Parallel()
			c, br := srvDial(t, addr)
			start := time.Now()
			srvWrite(t, c, tc.sent)
			srvExpect408(t, c, br)
			early(t, start)
		})
	}
	t.Run("byte-by-byte", func(t *testing.T) {
		// Bytes keep coming (slowloris), but the head is not done within
		// the time limit.
		t.Parallel()
		c, br := srvDial(t, addr)
		start := time.Now()
		srvTrickle(t, c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		srvExpect408(t, c, br)
		early(t, start)
	})
	t.Run("second-request", func(t *testing.T) {
		// On a kept connection the time limit runs from the next request's
		// first byte.
		t.Parallel()
		c, br := srvDial(t, addr)
		srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		srvRead(t, br, "GET")
		time.Sleep(300 * time.Millisecond) // idle, within IdleTimeout
		srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\nX-Fo")
		start := time.Now()
		srvExpect408(t, c, br)
		early(t, start)
	})

	// No byte of a request came: the connection closes without a word.
	t.Run("nothing", func(t *testing.T) {
		t.Parallel()
		c, br := srvDial(t, addr)
		start := time.Now()
		srvExpectClosed(t, c, br, 2*time.Second)
		early(t, start)
	})
	t.Run("idle-keep-alive", func(t *testing.T) {
		t.Parallel()
		addr, _ := srvStart(t, ok, func(s *Server) { s.ReadHeaderTimeout = limit }) // IdleTimeout: the same
		c, br := srvDial(t, addr)
		srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
		}
		start := time.Now()
		srvExpectClosed(t, c, br, 2*time.Second)
		early(t, start)
	})

	// The client closed its side mid-head: nothing to answer.
	for _, tc := range []struct{ name, sent string }{
		{"after-a-line", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"mid-request-line", "GET /pa"},
		{"mid-header-name", "GET / HTTP/1.1\r\nHost: x\r\nX-Fo"},
		{"mid-header-value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b"},
	} {
		t.Run("eof-"+tc.name, func(t *testing.T) {
			t.Parallel()
			c, br := srvDial(t, addr)
			srvWrite(t, c, tc.sent)
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			srvExpectClosed(t, c, br, 2*time.Second)
		})
	}
}

// TestServerShutdownAnswersSlowHead: a head still arriving when Shutdown
// starts holds it up no longer than the time limit and the bounded answer,
// even when the client reads nothing meanwhile; the answer is then there.
func TestServerShutdownAnswersSlowHead(t *testing.T) {
	t.Parallel()
	const limit = 300 * time.Millisecond
	run := srvStartRun(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(s *Server) { s.ReadHeaderTimeout = limit })
	c, br := srvDial(t, run.addr)
	srvTrickle(t, c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	time.Sleep(50 * time.Millisecond) // the head has begun
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- run.s.Shutdown(context.Background()) }()
	if err := srvWait(t, errc, 5*time.Second, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > limit+2*time.Second {
		t.Errorf("Shutdown took %v, want at most the %v limit plus the answer's bounds", d, limit)
	}
	srvExpect408(t, c, br)
}

func TestServerIdleTimeout(t *testing.T) {
	t.Parallel()
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(s *Server) { s.ReadHeaderTimeout = 3 * time.Second; s.IdleTimeout = 200 * time.Millisecond })
	c, br := srvDial(t, addr)
	for range 3 { // each request restarts the idle clock
		srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := srvRead(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	srvExpectClosed(t, c, br, 2*time.Second)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("idle connection closed after %v, want about 200ms", d)
	}
}

// ---------------------------------------------------------------------------
// Shutdown and Close.

func TestServerShutdownWaitsForStreams(t *testing.T) {
	release, releaseFn := srvReleaser(t)
	var handlerDone atomic.Bool
	run := srvStartRun(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			io.WriteString(w, "quick")
			return
		}
		defer handlerDone.Store(true)
		io.WriteString(w, "a")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
			return
		}
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "b")
	}))

	// An idle keep-alive connection.
	idle, idleBr := srvDial(t, run.addr)
	srvWrite(t, idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	srvRead(t, idleBr, "GET")

	// A stream in flight.
	sc, sbr := srvDial(t, run.addr)
	srvWrite(t, sc, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(sbr, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	var a [1]byte
	if _, err := io.ReadFull(resp.Body, a[:]); err != nil {
		t.Fatal(err)
	}

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownErr <- run.s.Shutdown(ctx)
	}()

	srvExpectClosed(t, idle, idleBr, time.Second)
	if c, err := net.DialTimeout("tcp", run.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted during Shutdown")
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v while a stream was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}

	releaseFn()
	if err := srvWait(t, shutdownErr, 3*time.Second, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if !handlerDone.Load() {
		t.Errorf("Shutdown returned before the streaming handler")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "b" {
		t.Errorf("stream rest %q: %v, want %q and a clean end", rest, err, "b")
	}
	srvExpectClosed(t, sc, sbr, time.Second)
	srvWait(t, run.done, 2*time.Second, "Serve to return")
	if !errors.Is(run.err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", run.err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serveErr := make(chan error, 1)
	go func() { serveErr <- run.s.Serve(ln) }()
	if err := srvWait(t, serveErr, 2*time.Second, "Serve after Shutdown"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want http.ErrServerClosed", err)
	}
}

func TestServerShutdownWithExpiredContext(t *testing.T) {
	release, releaseFn := srvReleaser(t)
	started := make(chan struct{}, 1)
	run := srvStartRun(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}))
	c, _ := srvDial(t, run.addr)
	srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	srvWait(t, started, 2*time.Second, "the handler")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errc := make(chan error, 1)
	go func() { errc <- run.s.Shutdown(ctx) }()
	if err := srvWait(t, errc, 2*time.Second, "Shutdown with a cancelled context"); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	go func() { errc <- run.s.Shutdown(dctx) }()
	if err := srvWait(t, errc, 2*time.Second, "Shutdown with a deadline"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	srvWait(t, run.done, 2*time.Second, "Serve to return")
	if !errors.Is(run.err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", run.err)
	}
	releaseFn()
}

func TestServerCloseCutsActiveConnections(t *testing.T) {
	release, _ := srvReleaser(t)
	run := srvStartRun(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		io.WriteString(w, "b")
	}))
	c, br := srvDial(t, run.addr)
	srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	var a [1]byte
	if _, err := io.ReadFull(resp.Body, a[:]); err != nil {
		t.Fatal(err)
	}
	if err := run.s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	rest, err := io.ReadAll(resp.Body)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after Close the stream gave %q, %v; want it cut at once", rest, err)
	}
	srvWait(t, run.done, 2*time.Second, "Serve to return")
	if !errors.Is(run.err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", run.err)
	}
	if c, err := net.DialTimeout("tcp", run.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a connection was accepted after Close")
	}
}

// ---------------------------------------------------------------------------
// Differential: the same raw requests to net/http's server and to this one.

// srvEcho is the differential tests' handler.
func srvEcho(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/flush":
		io.WriteString(w, "a")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "b")
		return
	case "/204":
		w.WriteHeader(204)
		return
	case "/304":
		w.WriteHeader(304)
		return
	case "/close":
		w.Header().Set("Connection", "close")
	case "/big":
		w.Write(bytes.Repeat([]byte("0123456789"), 1000))
		return
	case "/cl":
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "abc")
		return
	case "/html":
		io.WriteString(w, "<html><body>x</body></html>")
		return
	case "/status":
		w.WriteHeader(http.StatusTeapot)
	}
	body, err := io.ReadAll(r.Body)
	fmt.Fprintf(w, "method=%s uri=%s path=%q query=%q host=%q proto=%s cl=%d te=%q close=%v body=%q err=%v x=%q",
		r.Method, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.Host, r.Proto, r.ContentLength, r.TransferEncoding, r.Close,
		body, err != nil, r.Header.Values("X-Test"))
}

// srvAnswer is one response as the client saw it.
type srvAnswer struct {
	Status      int
	Body        string
	BodyErr     bool
	ContentType string
	Close       bool
}

// srvCore formats answers without their Close flags.
func srvCore(a []srvAnswer) string {
	var b strings.Builder
	for _, x := range a {
		x.Close = false
		fmt.Fprintf(&b, "%+v\n", x)
	}
	return b.String()
}

// srvCloses lists the answers' Close flags.
func srvCloses(a []srvAnswer) []bool {
	var c []bool
	for _, x := range a {
		c = append(c, x.Close)
	}
	return c
}

// srvSentinel follows every raw request: answered only when the server
// kept the connection after the request(s) before it.
const srvSentinel = "GET /__end HTTP/1.1\r\nHost: end\r\nConnection: close\r\n\r\n"

// srvExchange sends raw and the sentinel, and reads every answer until the
// server closes.
func srvExchange(t *testing.T, addr, raw string) (answers []srvAnswer, timedOut bool) {
	t.Helper()
	var methods []string
	rb := bufio.NewReader(strings.NewReader(raw + srvSentinel))
	for {
		req, err := http.ReadRequest(rb)
		if err != nil {
			break
		}
		methods = append(methods, req.Method)
		io.Copy(io.Discard, req.Body)
	}
	c, br := srvDial(t, addr)
	go c.Write([]byte(raw + srvSentinel))
	for {
		if _, err := br.Peek(1); err != nil {
			return answers, errors.Is(err, os.ErrDeadlineExceeded)
		}
		m := "GET"
		if len(methods) > 0 {
			m = methods[0]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Errorf("unparseable answer: %v", err)
			return answers, false
		}
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode >= 200 && len(methods) > 0 {
			methods = methods[1:]
		}
		answers = append(answers, srvAnswer{resp.StatusCode, string(b), err != nil, resp.Header.Get("Content-Type"), resp.Close})
		if err != nil {
			return answers, errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

func TestServerDifferential(t *testing.T) {
	const (
		same      = iota // both answer the same
		rejected         // both refuse it: a 4xx/5xx (any text) or a close, and nothing after
		either           // both answer the same, or both refuse it
		firstOK          // the first answers agree (h1 closes where net/http keeps)
		h1Refuses        // h1 refuses it (net/http may serve it: HTTP/2 is not h1's)
	)
	stdAddr := srvStartStd(t, http.HandlerFunc(srvEcho), func(s *http.Server) { s.MaxHeaderBytes = 4096 })
	h1Addr, _ := srvStart(t, http.HandlerFunc(srvEcho), func(s *Server) {
		s.MaxHeaderBytes = 4096
		s.ReadHeaderTimeout = 2 * time.Second
	})
	const host = "Host: x\r\n"
	rows := []struct {
		name string
		kind int
		raw  string
	}{
		{"get", same, "GET / HTTP/1.1\r\n" + host + "\r\n"},
		{"query-and-escapes", same, "GET /a%20b/%2F?q=1&r=%41 HTTP/1.1\r\n" + host + "X-Test: 1\r\nx-test: 2\r\n\r\n"},
		{"absolute-form", same, "GET http://example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n"},
		{"options-star", same, "OPTIONS * HTTP/1.1\r\n" + host + "\r\n"},
		{"post-content-length", same, "POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello"},
		{"post-empty", same, "POST /p HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n"},
		{"post-no-length", same, "POST /p HTTP/1.1\r\n" + host + "\r\n"},
		{"get-with-body", same, "GET /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc"},
		{"duplicate-equal-lengths", same, "POST /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
		{"chunked", same, "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: v\r\n\r\n"},
		{"chunked-bad-size", same, "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{"chunked-short", same, "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n10\r\nhello\r\n0\r\n\r\n"},
		{"pipelined", same, "GET /1 HTTP/1.1\r\n" + host + "\r\nPOST /2 HTTP/1.1\r\n" + host + "Content-Length: 1\r\n\r\nxGET /3 HTTP/1.1\r\n" + host + "\r\n"},
		{"head", same, "HEAD / HTTP/1.1\r\n" + host + "\r\n"},
		{"head-flush", same, "HEAD /flush HTTP/1.1\r\n" + host + "\r\n"},
		{"flush", same, "GET /flush HTTP/1.1\r\n" + host + "\r\n"},
		{"204", same, "GET /204 HTTP/1.1\r\n" + host + "\r\n"},
		{"304", same, "GET /304 HTTP/1.1\r\n" + host + "\r\n"},
		{"handler-close", same, "GET /close HTTP/1.1\r\n" + host + "\r\n"},
		{"client-close", same, "GET / HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"},
		{"big", same, "GET /big HTTP/1.1\r\n" + host + "\r\n"},
		{"handler-length", same, "GET /cl HTTP/1.1\r\n" + host + "\r\n"},
		{"sniff-html", same, "GET /html HTTP/1.1\r\n" + host + "\r\n"},
		{"teapot", same, "GET /status HTTP/1.1\r\n" + host + "\r\n"},
		{"http10", same, "GET / HTTP/1.0\r\n\r\n"},
		{"http10-flush", same, "GET /flush HTTP/1.0\r\n\r\n"},
		{"http10-post", same, "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"},
		{"http10-keep-alive", firstOK, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"expect-continue", same, "POST /p HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"},
		{"lowercase-headers", same, "GET / HTTP/1.1\r\nhost: x\r\nx-test: a\r\n\r\n"},
		{"tab-in-value", same, "GET / HTTP/1.1\r\n" + host + "X-Test: a\tb\r\n\r\n"},
		{"bare-lf", either, "GET / HTTP/1.1\n" + host[:len(host)-2] + "\n\n"},
		{"empty-host", either, "GET / HTTP/1.1\r\nHost:\r\n\r\n"},
		{"obs-fold", either, "GET / HTTP/1.1\r\n" + host + "X-Test: a\r\n b\r\n\r\n"},
		{"leading-crlf", either, "\r\nGET / HTTP/1.1\r\n" + host + "\r\n"},
		{"length-and-chunked", h1Refuses, // RFC 9112 §6.1: net/http serves it and keeps the connection
			"POST /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"garbage", rejected, "GARBAGE\r\n\r\n"},
		{"http09", rejected, "GET /\r\n\r\n"},
		{"http2-version", rejected, "GET / HTTP/2.0\r\n" + host + "\r\n"},
		{"http-9", rejected, "GET / HTTP/9.9\r\n" + host + "\r\n"},
		{"h2-preface", h1Refuses, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"no-host", rejected, "GET / HTTP/1.1\r\n\r\n"},
		{"two-hosts", rejected, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"bad-host", rejected, "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
		{"no-colon", rejected, "GET / HTTP/1.1\r\n" + host + "NoColon\r\n\r\n"},
		{"space-before-colon", rejected, "GET / HTTP/1.1\r\n" + host + "X-Test : a\r\n\r\n"},
		{"nul-in-value", rejected, "GET / HTTP/1.1\r\n" + host + "X-Test: a\x00b\r\n\r\n"},
		{"bad-name", rejected, "GET / HTTP/1.1\r\n" + host + "X\"T: a\r\n\r\n"},
		{"bad-length", rejected, "POST / HTTP/1.1\r\n" + host + "Content-Length: 1x\r\n\r\n"},
		{"negative-length", rejected, "POST / HTTP/1.1\r\n" + host + "Content-Length: -5\r\n\r\n"},
		{"two-lengths", rejected, "POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"unknown-coding", rejected, "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n"},
		{"coding-list", rejected, "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"bad-expect", rejected, "POST / HTTP/1.1\r\n" + host + "Expect: something\r\nContent-Length: 1\r\n\r\nx"},
		{"space-in-uri", rejected, "GET /a b HTTP/1.1\r\n" + host + "\r\n"},
		{"head-too-large", rejected, "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n"},
	}
	refused := func(a []srvAnswer) bool {
		return len(a) == 0 || (len(a) == 1 && a[0].Status >= 400)
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			std, stdHung := srvExchange(t, stdAddr, row.raw)
			got, hung := srvExchange(t, h1Addr, row.raw)
			if hung {
				t.Errorf("h1 neither answered nor closed within 5s; answers so far %+v", got)
			}
			if stdHung {
				t.Logf("net/http hung on this row (answers %+v)", std)
			}
			switch row.kind {
			case same:
				if srvCore(std) != srvCore(got) {
					t.Errorf("answers differ for %q\n net/http: %+v\n h1:       %+v", row.raw, std, got)
				} else if fmt.Sprint(srvCloses(std)) != fmt.Sprint(srvCloses(got)) {
					t.Errorf("same answers to %q, but Connection: close differs: net/http %v, h1 %v (answers %d, %d)",
						row.raw, srvCloses(std), srvCloses(got), len(std), len(got))
				}
			case firstOK:
				if len(std) == 0 || len(got) == 0 || srvCore(std[:1]) != srvCore(got[:1]) {
					t.Errorf("first answers differ for %q\n net/http: %+v\n h1:       %+v", row.raw, std, got)
				}
			case h1Refuses:
				if !refused(got) {
					t.Errorf("h1 served %q: %+v", row.raw, got)
				}
			case rejected, either:
				if refused(std) != refused(got) || (!refused(std) && row.kind == rejected) {
					t.Errorf("refusals differ for %q\n net/http: %+v\n h1:       %+v", row.raw, std, got)
				} else if !refused(std) && fmt.Sprint(std) != fmt.Sprint(got) {
					t.Errorf("answers differ for %q\n net/http: %+v\n h1:       %+v", row.raw, std, got)
				} else if refused(std) && len(std) == 1 && len(got) == 1 && std[0].Status != got[0].Status {
					t.Logf("both refuse %q, net/http with %d, h1 with %d", row.raw, std[0].Status, got[0].Status)
				}
			}
		})
	}
}

// CancelRequests cancels every request in flight with the cause given, and
// leaves its connection open: the handler can still answer. Close cancels
// what it cuts.
func TestServerCancelRequests(t *testing.T) {
	errStop := errors.New("stopping")
	started := make(chan struct{}, 2)
	causes := make(chan error, 2)
	run := srvStartRun(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		causes <- context.Cause(r.Context())
		io.WriteString(w, "cancelled")
	}))
	c, br := srvDial(t, run.addr)
	srvWrite(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	srvWait(t, started, 2*time.Second, "the handler")
	run.s.CancelRequests(errStop)
	if got := srvWait(t, causes, 2*time.Second, "the cancellation"); got != errStop {
		t.Errorf("cause: got %v, want %v", got, errStop)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("the answer after CancelRequests: %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "cancelled" {
		t.Errorf("the answer after CancelRequests: got %d %q", resp.StatusCode, b)
	}

	c2, _ := srvDial(t, run.addr)
	srvWrite(t, c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	srvWait(t, started, 2*time.Second, "the second handler")
	_ = run.s.Close()
	if got := srvWait(t, causes, 2*time.Second, "the cancellation by Close"); got != http.ErrServerClosed {
		t.Errorf("cause after Close: got %v, want http.ErrServerClosed", got)
	}
}
