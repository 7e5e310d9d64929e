package app_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchWriter is a minimal flushing ResponseWriter, so a benchmark measures
// the gateway rather than a recorder.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) Flush()                      {}

// benchProxy drives one proxied request per iteration through the App's
// handler to an in-process upstream.
func benchProxy(b *testing.B, upstream http.Handler, body string, wantBytes int) {
	up := httptest.NewServer(upstream)
	defer up.Close()
	a, _ := newApp(b, parseConfig(b, []backend{be("a", up.URL)}, fastRetry))
	h := a.Handler()

	req := httptest.NewRequest(http.MethodPost, chatPath, nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", clientKey)
	req.ContentLength = int64(len(body))
	rd := strings.NewReader(body)
	w := &benchWriter{h: http.Header{}}

	b.ReportAllocs()
	b.SetBytes(int64(wantBytes))
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK || w.n != wantBytes {
			b.Fatalf("got %d with %d bytes, want 200 with %d", w.status, w.n, wantBytes)
		}
	}
}

func BenchmarkProxy(b *testing.B) {
	resp := []byte(completionJSON)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Ratelimit-Remaining-Tokens", "79000")
		_, _ = w.Write(resp)
	})
	benchProxy(b, upstream, chatBody, len(resp))
}

func BenchmarkProxyStream(b *testing.B) {
	var stream bytes.Buffer
	for i := range 20 {
		stream.WriteString(chunk(i, "tok"))
	}
	stream.WriteString(doneEvent)
	events := bytes.SplitAfter(stream.Bytes(), []byte("\n\n"))
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			_, _ = w.Write(e)
			w.(http.Flusher).Flush()
		}
	})
	benchProxy(b, upstream, streamBody, stream.Len())
}
