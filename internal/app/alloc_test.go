package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/app"
)

// requestPathAllocBudget is what one proxied, non-streamed request may
// allocate end to end through the handler (client side of net/http
// included, upstream excluded as far as the test can): a regression past it
// fails CI without timing anything. Measured 2026-11-27: 69 with the h1
// upstream client and its response-head parse, 74 under -race, which drops
// pooled items (74 and 79–80 with http.ReadResponse's parse; 111 over
// net/http's Transport); see the test log.
const requestPathAllocBudget = 80

func TestRequestPathAllocBudget(t *testing.T) {
	resp := []byte(completionJSON)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp)
	}))
	defer up.Close()
	a, err := app.New(parseConfig(t, []backend{be("a", up.URL), be("b", up.URL)}, fastRetry), app.Options{AccessLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	req := httptest.NewRequest(http.MethodPost, chatPath, nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", clientKey)
	req.ContentLength = int64(len(chatBody))
	rd := strings.NewReader(chatBody)
	w := &benchWriter{h: http.Header{}}
	run := func() {
		rd.Reset(chatBody)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			t.Fatalf("status %d", w.status)
		}
	}
	run()
	allocs := testing.AllocsPerRun(200, run)
	t.Logf("request path: %.0f allocations per request (budget %d)", allocs, requestPathAllocBudget)
	if allocs > requestPathAllocBudget {
		t.Errorf("request path allocated %.0f times per request, budget %d", allocs, requestPathAllocBudget)
	}
	up.CloseClientConnections()
}
