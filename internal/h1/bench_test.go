package h1_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/h1"
)

// BenchmarkRoundTrip compares one keep-alive POST with its whole answer
// read, over this transport and over net/http's Transport, against the same
// in-process upstream.
func BenchmarkRoundTrip(b *testing.B) {
	answer := strings.Repeat("x", 474)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	body := `{"messages":[{"role":"user","content":"hello"}],"max_tokens":16}`
	std := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	defer std.CloseIdleConnections()
	lean := h1.New(h1.Options{Fallback: std})
	defer lean.Close()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"h1", lean}, {"net-http", std}} {
		b.Run(tc.name, func(b *testing.B) {
			rd := strings.NewReader(body)
			buf := make([]byte, 1024)
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", io.NopCloser(rd))
				req.ContentLength = int64(len(body))
				resp, err := tc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.ReadFull(resp.Body, buf[:len(answer)])
				resp.Body.Close()
				if n != len(answer) {
					b.Fatalf("read %d bytes", n)
				}
			}
		})
	}
}
