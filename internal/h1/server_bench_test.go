package h1_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/h1"
)

// benchServe starts h (on h1.Server or net/http's http.Server) on a
// loopback listener and returns a raw keep-alive client connection.
func benchServe(tb testing.TB, h http.Handler, lean bool) net.Conn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var closeSrv func()
	if lean {
		s := &h1.Server{Handler: h}
		go func() { _ = s.Serve(ln) }()
		closeSrv = func() { _ = s.Close() }
	} else {
		s := &http.Server{Handler: h}
		go func() { _ = s.Serve(ln) }()
		closeSrv = func() { _ = s.Close() }
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = c.Close()
		closeSrv()
	})
	return c
}

// benchHandler reads the request body and answers a 474-byte JSON body, as
// the gateway's proxy does for a non-streamed completion.
func benchHandler() http.Handler {
	answer := []byte(strings.Repeat("x", 474))
	buf := make([]byte, 1024)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{"474"}
		_, _ = w.Write(answer)
	})
}

const benchBody = `{"messages":[{"role":"user","content":"hello"}],"max_tokens":16}`

var benchRequest = []byte("POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01 HTTP/1.1\r\n" +
	"Host: gw\r\nContent-Type: application/json\r\napi-key: k\r\nUser-Agent: bench\r\n" +
	"Content-Length: " + strconv.Itoa(len(benchBody)) + "\r\n\r\n" + benchBody)

// benchExchange sends one request and reads its answer (a Content-Length
// body) without allocating.
func benchExchange(tb testing.TB, c net.Conn, br *bufio.Reader) {
	if _, err := c.Write(benchRequest); err != nil {
		tb.Fatal(err)
	}
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			tb.Fatal(err)
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		tb.Fatal("no Content-Length")
	}
	if _, err := br.Discard(n); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkServer compares one keep-alive request and its answer served by
// h1.Server and by net/http's http.Server, with the same handler.
func BenchmarkServer(b *testing.B) {
	for _, tc := range []struct {
		name string
		lean bool
	}{{"h1", true}, {"net-http", false}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchServe(b, benchHandler(), tc.lean)
			br := bufio.NewReaderSize(c, 4096)
			b.ReportAllocs()
			for b.Loop() {
				benchExchange(b, c, br)
			}
		})
	}
}

// serverAllocBudget bounds the allocations of one request served by
// h1.Server (client side included, which allocates nothing): the parse
// (fastRequest: the request, its URL, the header map, one slice for its
// values and one string for its lines), the request's context (copied into
// the request in place, not a second request), and the answer. Measured
// 2026-11-27: 12 (17 with http.ReadRequest's parse; net/http's server: 26).
const serverAllocBudget = 12

func TestServerAllocBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("measured without -race (its sync.Pool drops items); .ci/run runs it so")
	}
	c := benchServe(t, benchHandler(), true)
	br := bufio.NewReaderSize(c, 4096)
	benchExchange(t, c, br) // the connection's own allocations come first
	got := testing.AllocsPerRun(200, func() { benchExchange(t, c, br) })
	t.Logf("%.1f allocations per request", got)
	if got > serverAllocBudget {
		t.Errorf("h1.Server: %.1f allocations per request, budget %d", got, serverAllocBudget)
	}
}
