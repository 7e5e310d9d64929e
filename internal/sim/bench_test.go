package sim

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that drops the answer and reuses its header map.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

// rewindBody is a request body that can be read again after Reset.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

func benchmarkServe(b *testing.B, body string) {
	s := New(Options{})
	req := httptest.NewRequest(http.MethodPost, chatPath("bench"), nil)
	rb := &rewindBody{}
	req.Body = rb
	req.ContentLength = int64(len(body))
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rb.Reset([]byte(body))
		clear(w.h)
		w.status = 0
		s.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkChatCompletion measures the zero-latency non-streamed chat path.
func BenchmarkChatCompletion(b *testing.B) {
	benchmarkServe(b, `{"messages":[{"role":"system","content":"You are terse."},`+
		`{"role":"user","content":"Name three colours."}],"max_tokens":16}`)
}

// BenchmarkChatCompletionStream measures the zero-latency streamed chat path.
func BenchmarkChatCompletionStream(b *testing.B) {
	benchmarkServe(b, `{"messages":[{"role":"user","content":"Name three colours."}],`+
		`"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`)
}
