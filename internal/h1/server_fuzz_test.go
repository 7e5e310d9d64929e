package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// srvFuzzHandler echoes what it saw of the request. To a HEAD it answers
// Content-Length: 0, so that its answer reads the same without knowing the
// request's method.
func srvFuzzHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", "0")
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	switch r.URL.Path {
	case "/flush":
		fmt.Fprintf(w, "%s ", r.Method)
		http.NewResponseController(w).Flush()
	case "/204":
		w.WriteHeader(http.StatusNoContent)
		return
	case "/close":
		w.Header().Set("Connection", "close")
	}
	fmt.Fprintf(w, "%s %q %q %d %v", r.Method, r.RequestURI, r.Host, len(b), err != nil)
}

// FuzzServerRequest: whatever bytes a client sends, the server answers
// with parseable HTTP/1.1 responses or closes the connection, within a
// short deadline, and never panics.
func FuzzServerRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /flush HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /flush HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nshort",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /flush HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://h/p?q HTTP/1.1\r\nHost: y\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 3000) + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n",
		"GARBAGE\r\n\r\n",
		"\r\n\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	addr, _ := srvStart(f, http.HandlerFunc(srvFuzzHandler), func(s *Server) {
		s.ReadHeaderTimeout = time.Second
		s.IdleTimeout = time.Second
		s.MaxHeaderBytes = 2048
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(4 * time.Second))
		go func() {
			// The server may close before reading it all: ignore errors.
			if _, err := c.Write(in); err == nil {
				_ = c.(*net.TCPConn).CloseWrite()
			}
		}()
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			if n > 2*len(in)+2 {
				t.Fatalf("%d answers to %d bytes", n, len(in))
			}
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("after %d answers the server neither answered nor closed within 4s (input %q)", n, in)
				}
				return // closed (or reset)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				if srvIsReset(err) {
					return
				}
				t.Fatalf("answer %d does not parse: %v (input %q)", n, err, in)
			}
			if resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
				t.Fatalf("answer %d is %s, want HTTP/1.1 (input %q)", n, resp.Proto, in)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				if srvIsReset(err) {
					return
				}
				t.Fatalf("answer %d (%d): body: %v (input %q)", n, resp.StatusCode, err, in)
			}
		}
	})
}
