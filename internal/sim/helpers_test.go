package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock for quota tests.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 2, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	testKey     = "test-key"
	testVersion = "2024-02-01"
)

// chatPath is the Azure chat completions path of deployment dep.
func chatPath(dep string) string {
	return "/openai/deployments/" + dep + "/chat/completions?api-version=" + testVersion
}

// chatBody is a chat request with one user message and max_tokens (0: absent).
func chatBody(content string, maxTokens int, stream bool) string {
	m := map[string]any{"messages": []map[string]string{{"role": "user", "content": content}}}
	if maxTokens > 0 {
		m["max_tokens"] = maxTokens
	}
	if stream {
		m["stream"] = true
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// result is what an in-process request produced.
type result struct {
	*httptest.ResponseRecorder
	aborted bool // the handler aborted the connection
}

// serve runs one request through h in process, turning http.ErrAbortHandler into aborted.
func serve(t testing.TB, h http.Handler, method, target, body string, header http.Header) (res result) {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewBufferString(body))
	for k, v := range header {
		req.Header[k] = v
	}
	res.ResponseRecorder = httptest.NewRecorder()
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				res.aborted = true
				return
			}
			panic(v)
		}
	}()
	h.ServeHTTP(res.ResponseRecorder, req)
	return res
}

// headerInt parses header name of rec as an integer, failing the test if it is not one.
func headerInt(t testing.TB, h http.Header, name string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(h.Get(name), 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q: %v", name, h.Get(name), err)
	}
	return v
}

// decode unmarshals rec's body into v.
func decode(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// checkGoroutines fails the test if, after its cleanups, more goroutines run than at its start.
// Call it first in tests that are not parallel, so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines: got %d, want at most %d\n%s", runtime.NumGoroutine(), before, buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// newHTTPServer serves s on a loopback httptest server; cleanup closes s first, so that hung
// handlers return, then the server.
func newHTTPServer(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close)
	return ts
}
