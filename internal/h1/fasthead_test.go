package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// plainHead is the shape of a simulator's or Azure's answer.
const plainHead = "HTTP/1.1 200 OK\r\nApim-Request-Id: 7f1c2a9e\r\nContent-Length: 5\r\n" +
	"Content-Type: application/json\r\nx-ratelimit-remaining-tokens: 1999000\r\n" +
	"X-Ms-Region: Sweden Central\r\nSet-Cookie: a=1\r\nX-Empty:\r\n" +
	"X-Trim: \t spaced \t\r\nDate: Fri, 27 Nov 2026 09:22:34 GMT\r\n\r\n"

// TestFastResponseTakesThePlainShape: the plain heads upstreams send are
// parsed here, as http.ReadResponse parses them.
func TestFastResponseTakesThePlainShape(t *testing.T) {
	for _, in := range []string{
		plainHead + "hello",
		"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 503 \r\ncontent-length: 007\r\n\r\n1234567",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Obs: caf\xe9\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", // the body breaks off
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"f\r\ndata: {\"a\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n", // an SSE stream
		"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked \r\n\r\n5;ext=1 \r\nhello\r\n0\r\nX-T: 1\r\n\r\n", // an extension, a trailer
		"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",                                // the body breaks off
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",                     // no CRLF after the data
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",                                    // not a size
	} {
		req := &http.Request{Method: http.MethodPost}
		resp, n, ok := fastResponse([]byte(in), req)
		if !ok {
			t.Errorf("%q: not taken", in)
			continue
		}
		same(t, []byte(in), resp, n, req)
	}
}

// TestFastResponseLeavesTheRestToTheStandardLibrary: every other shape is
// declined, so http.ReadResponse parses it (or refuses it) as before.
func TestFastResponseLeavesTheRestToTheStandardLibrary(t *testing.T) {
	for _, in := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",                                            // the head is not all here
		"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",                                   // not HTTP/1.1
		"HTTP/1.1 100 Continue\r\n\r\n",                                                       // interim
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",                                // no body by status
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",                              // no body by status
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",                         // a coding
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", // repeated
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",                              // not chunked
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n",               // announced trailer
		"HTTP/1.1 200 OK\r\n\r\nuntil close",                                                  // no length
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",              // repeated length
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",          // both
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",                                  // not digits
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",                                         // empty
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",                   // close
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",                    // rewritten by net/http
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n",  // a repeated name
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n folded\r\n\r\n",                   // obs-fold
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX A: 1\r\n\r\n",                              // not a token
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n: 1\r\n\r\n",                                 // no name
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A 1\r\n\r\n",                               // no colon
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: a\rb\r\n\r\n",                           // a bare CR
		"HTTP/1.1 200 OK\r\nContent-Length: 0\nX-A: 1\r\n\r\n",                                // a bare LF
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: \x7f\r\n\r\n",                           // DEL
		"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",                                        // not a status
		"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",                                         // no space
		"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n",                                    // control byte in the reason
	} {
		if _, _, ok := fastResponse([]byte(in), &http.Request{Method: http.MethodPost}); ok {
			t.Errorf("%q: taken, want it left to http.ReadResponse", in)
		}
	}
	if _, _, ok := fastResponse([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), &http.Request{Method: http.MethodHead}); ok {
		t.Error("an answer to HEAD was taken: its length is not its body's")
	}
}

// FuzzFastResponse: whatever fastResponse takes, http.ReadResponse reads
// the same from the same bytes: status, protocol, headers, length, Close
// and the body with its ending (io.EOF or io.ErrUnexpectedEOF).
func FuzzFastResponse(f *testing.F) {
	f.Add([]byte(plainHead+"hello"), false)
	f.Add([]byte("HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\nContent-Length: 2\r\n\r\n{}"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n folded\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"f\r\ndata: {\"a\":1}\n\n\r\n3 ; x=\"y\"\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\n0\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\na\r\n0\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		req := &http.Request{Method: http.MethodPost}
		if head {
			req.Method = http.MethodHead
		}
		resp, n, ok := fastResponse(in, req)
		if !ok {
			return
		}
		same(t, in, resp, n, req)
	})
}

// same checks fastResponse's answer for in against http.ReadResponse's.
func same(t *testing.T, in []byte, got *http.Response, n int, req *http.Request) {
	t.Helper()
	want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), req)
	if err != nil {
		t.Fatalf("%q: taken, but http.ReadResponse refuses it: %v", in, err)
	}
	if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
		got.ContentLength != want.ContentLength || got.Close != want.Close ||
		!reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) || want.Trailer != nil || got.Request != req {
		t.Fatalf("%q:\n got %+v\nwant %+v", in, got, want)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("%q: header\n got %q\nwant %q", in, got.Header, want.Header)
	}
	if got.TransferEncoding == nil {
		sameBody(t, in, n, got.Body, got.ContentLength, want.Body)
		return
	}
	sameChunked(t, in, n, got)
}

// sameChunked checks the chunked body that follows a head of n bytes in
// in, read as the client reads it (chunkedBody over a connection's read
// buffer, here fed one byte per read and, apart, all at once), against
// the standard library's over a buffer of the same size: the same bytes,
// the same ending (io.EOF, io.ErrUnexpectedEOF or another error) and the
// same trailer.
func sameChunked(t *testing.T, in []byte, n int, got *http.Response) {
	t.Helper()
	want, err := http.ReadResponse(bufio.NewReaderSize(bytes.NewReader(in), readBufSize), got.Request)
	if err != nil {
		t.Fatalf("%q: http.ReadResponse: %v", in, err)
	}
	wb, werr := io.ReadAll(want.Body)
	for _, src := range []io.Reader{iotest.OneByteReader(bytes.NewReader(in[n:])), bytes.NewReader(in[n:])} {
		resp := *got
		cb := &chunkedBody{r: bufio.NewReaderSize(src, readBufSize), resp: &resp}
		gb, gerr := io.ReadAll(cb)
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) ||
			errors.Is(gerr, io.ErrUnexpectedEOF) != errors.Is(werr, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: chunked body %q (%v), want %q (%v)", in, gb, gerr, wb, werr)
		}
		if !reflect.DeepEqual(resp.Trailer, want.Trailer) {
			t.Fatalf("%q: trailer %q, want %q", in, resp.Trailer, want.Trailer)
		}
	}
}

// sameBody checks the body that follows a head of n bytes in in, as the
// server and the client read it (fixedBody, here in one-byte reads), against
// the standard library's body want: the same bytes and the same ending.
func sameBody(t *testing.T, in []byte, n int, got io.ReadCloser, length int64, want io.ReadCloser) {
	t.Helper()
	if (got == http.NoBody) != (want == http.NoBody) {
		t.Fatalf("%q: body %v, want %v", in, got, want)
	}
	var gb []byte
	var gerr error
	if got != http.NoBody {
		gb, gerr = io.ReadAll(&fixedBody{r: iotest.OneByteReader(bytes.NewReader(in[n:])), left: length})
	}
	wb, werr := io.ReadAll(want)
	if !bytes.Equal(gb, wb) || !errors.Is(gerr, werr) {
		t.Fatalf("%q: body %q (%v), want %q (%v)", in, gb, gerr, wb, werr)
	}
}

// plainRequest is the shape of an SDK's call.
const plainRequest = "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01 HTTP/1.1\r\n" +
	"Host: 127.0.0.1:8080\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\napi-key: k\r\n" +
	"content-type: application/json\r\nX-Stainless-Retry-Count: 0\r\nContent-Length: 2\r\n\r\n{}"

// TestFastRequestTakesThePlainShape: the plain heads clients send are
// parsed here, as http.ReadRequest parses them.
func TestFastRequestTakesThePlainShape(t *testing.T) {
	for _, in := range []string{
		plainRequest,
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a%20b?q=1&r=%zz HTTP/1.1\r\nhost: x\r\nConnection: Close\r\n\r\n",
		"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", // the body breaks off
		"PATCH //x HTTP/1.1\r\nHost: [::1]:80\r\nX-Obs: caf\xe9\r\nX-A: 1\r\n\r\n",
		"GET /a/b.c~d_e-f?x=1&y=%41#z HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a?b?c HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a!b'c(d)*e+f,g;h=i:j@k$l&m HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		req, n, ok := fastRequest([]byte(in))
		if !ok {
			t.Errorf("%q: not taken", in)
			continue
		}
		sameRequest(t, []byte(in), req, n)
	}
}

// TestFastRequestLeavesTheRestToTheStandardLibrary: every other shape is
// declined, so http.ReadRequest and the server's checks decide as before.
func TestFastRequestLeavesTheRestToTheStandardLibrary(t *testing.T) {
	for _, in := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n",                           // the head is not all here
		"GET / HTTP/1.0\r\nHost: x\r\n\r\n",                                             // not HTTP/1.1
		"GET / HTTP/1.1\r\n\r\n",                                                        // no Host
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                                  // two
		"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",                                     // absolute form
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",                                         // asterisk form
		"CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n",                                        // CONNECT
		"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",                                             // not a token
		"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",                                          // a space in the target
		"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",                                         // a control byte
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",     // chunked
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", // repeated length
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nx",                     // not digits
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n",          // a list
		"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",                         // rewritten by net/http
		"GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",                                  // a space before the colon
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n",                       // obs-fold
		"GET / HTTP/1.1\nHost: x\r\n\r\n",                                               // a bare LF
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n",                         // a repeated name
		"GET / HTTP/1.1\r\nHost:\r\n\r\n",                                               // an empty Host
	} {
		if _, _, ok := fastRequest([]byte(in)); ok {
			t.Errorf("%q: taken, want it left to http.ReadRequest", in)
		}
	}
}

// FuzzFastRequest: whatever fastRequest takes, http.ReadRequest reads the
// same from the same bytes: method, URL, protocol, headers, Host, length,
// Close and the body with its ending.
func FuzzFastRequest(f *testing.F) {
	f.Add([]byte(plainRequest))
	f.Add([]byte("GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, n, ok := fastRequest(in)
		if !ok {
			return
		}
		sameRequest(t, in, req, n)
	})
}

// sameRequest checks fastRequest's answer for in against http.ReadRequest's.
func sameRequest(t *testing.T, in []byte, got *http.Request, n int) {
	t.Helper()
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		t.Fatalf("%q: taken, but http.ReadRequest refuses it: %v", in, err)
	}
	if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.Host != want.Host ||
		got.ContentLength != want.ContentLength || got.Close != want.Close ||
		want.TransferEncoding != nil || want.Trailer != nil {
		t.Fatalf("%q:\n got %+v\nwant %+v", in, got, want)
	}
	if !reflect.DeepEqual(got.URL, want.URL) {
		t.Fatalf("%q: URL %#v, want %#v", in, got.URL, want.URL)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("%q: header\n got %q\nwant %q", in, got.Header, want.Header)
	}
	sameBody(t, in, n, got.Body, got.ContentLength, want.Body)
}

// TestPlainHeadsTakeTheOnePassParse: the server and the client parse plain
// heads themselves (what follows is read by fixedBody), and leave the rest
// (here a chunked answer) to the standard library.
func TestPlainHeadsTakeTheOnePassParse(t *testing.T) {
	onePass := make(chan bool, 2)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rb, ok := r.Body.(*reqBody)
		_, fixed := rb.rc.(*fixedBody)
		onePass <- ok && fixed
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
		if r.URL.Path == "/chunked" {
			_ = http.NewResponseController(w).Flush() // the answer goes out chunked
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	tr := New(Options{})
	defer tr.Close()
	for _, path := range []string{"/plain", "/chunked"} {
		req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, ok := resp.Body.(*body)
		if !ok {
			t.Fatalf("%s: body %T", path, resp.Body)
		}
		if onePass := b.rc == &b.fixed || b.rc == &b.chunked; !onePass {
			t.Errorf("%s: the answer's head was not parsed in one pass (body %T)", path, b.rc)
		}
		if chunked := b.rc == &b.chunked; chunked != (path == "/chunked") {
			t.Errorf("%s: chunked body = %v", path, chunked)
		}
		if data, err := io.ReadAll(resp.Body); err != nil || string(data) != "ok" {
			t.Errorf("%s: body %q, %v", path, data, err)
		}
		resp.Body.Close()
		if !<-onePass {
			t.Errorf("%s: the request's head was not parsed in one pass", path)
		}
	}
}

// FuzzChunkedBody: a chunked body after a plain stream head reads as the
// standard library reads it (sameChunked): same data, ending and trailer.
func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("f\r\ndata: {\"a\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"))
	f.Add([]byte("5;ext=1 \r\nhello\r\n0\r\nX-T: 1\r\n\r\n"))
	f.Add([]byte("5 ;e\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte(" 5\r\nhello\r\n0\r\n\r\n")) // a blank before the size: refused by both
	f.Add([]byte("1\r\na\r\n1\r\nb\n0\r\n\r\n"))
	f.Add([]byte("0\r\nX-A: 1\r\nX-B:\r\n\r\nafter"))
	f.Add([]byte("3\r\nab"))
	f.Add([]byte("ffffffffffffffff\r\nx"))
	f.Fuzz(func(t *testing.T, body []byte) {
		const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
		in := append([]byte(head), body...)
		req := &http.Request{Method: http.MethodPost}
		resp, n, ok := fastResponse(in, req)
		if !ok {
			t.Fatal("a plain chunked head was not taken")
		}
		sameChunked(t, in, n, resp)
	})
}

// TestChunkedBodyHandsOnDataWithoutWaiting: a Read that has a chunk's data
// returns it even when the next size line has not come yet (an SSE event
// reaches the client at once), and the next Read waits for it.
func TestChunkedBodyHandsOnDataWithoutWaiting(t *testing.T) {
	pr, pw := io.Pipe()
	cb := &chunkedBody{r: bufio.NewReaderSize(pr, readBufSize), resp: &http.Response{}}
	go func() { _, _ = io.WriteString(pw, "7\r\nevent 1\r\n") }()
	p := make([]byte, 64)
	type result struct {
		n   int
		err error
	}
	first := make(chan result, 1)
	go func() { n, err := cb.Read(p); first <- result{n, err} }()
	select {
	case r := <-first:
		if r.err != nil || string(p[:r.n]) != "event 1" {
			t.Fatalf("first read: %q, %v", p[:r.n], r.err)
		}
	case <-time.After(5 * time.Second):
		pw.CloseWithError(errors.New("test over")) // ends the stuck read
		t.Fatal("the first read waited for the next size line instead of handing on its chunk")
	}
	go func() { _, _ = io.WriteString(pw, "7\r\nevent 2\r\n0\r\n\r\n"); pw.Close() }()
	data, err := io.ReadAll(cb)
	if err != nil || string(data) != "event 2" {
		t.Fatalf("rest: %q, %v", data, err)
	}
}
