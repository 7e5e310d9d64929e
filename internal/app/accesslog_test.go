package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/logtest"
)

// TestAccessLogFastPath: the batched access log writes one JSON line per
// request with the same fields as the slog path, and never the key.
func TestAccessLogFastPath(t *testing.T) {
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	cfg := parseConfig(t, []backend{be("a", up.URL)}, fastRetry)
	var out logtest.Buffer
	lw := app.NewLineWriter(&out)
	a, err := app.New(cfg, app.Options{AccessLog: lw})
	if err != nil {
		t.Fatal(err)
	}
	srv := servePlain(t, a)
	defer srv.Close()
	for _, c := range []struct{ key, path string }{
		{clientKey, chatPath}, {"wrong-key", chatPath}, {clientKey, "/some/raw/path/secret-xyz"},
		{clientKey, "/openai/deployments/d/raw/secret-abc?api-version=2024-02-01"},
		{"wrong-key", "HEAD"},
	} {
		method, path := "POST", c.path
		if c.path == "HEAD" {
			method, path = "HEAD", chatPath
		}
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(chatBody))
		req.Header.Set("api-key", c.key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	// A handler logs once its answer is complete, so the client may be a
	// moment ahead of the log: drain the server before reading it.
	srv.Drain(t)
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 5:\n%s", len(lines), out.String())
	}
	// route names the operation, never the raw path a client wrote; and
	// what the gateway answered itself counts in bytes_out.
	for _, want := range []string{`"route":"/openai/deployments/{id}/chat/completions"`, `"route":"other"`, `"route":"/openai/deployments/{id}/other"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no line with %s:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), `"method":"HEAD"`) || strings.Count(out.String(), `"bytes_out":0`) != 1 {
		t.Errorf("want one HEAD line, with bytes_out 0 (no body is sent), and no other line with 0:\n%s", out.String())
	}
	if strings.Contains(out.String(), "secret-") {
		t.Errorf("a raw path reached the access log:\n%s", out.String())
	}
	// The 200's answer is flushed before its line is written: the lines of
	// the two requests may come in either order.
	got := map[float64]map[string]any{}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		if m["method"] == "HEAD" {
			continue
		}
		st, _ := m["status"].(float64)
		got[st] = m
	}
	for i, want := range []float64{200, 401} {
		m := got[want]
		if m == nil {
			t.Fatalf("no line with status %v:\n%s", want, out.String())
		}
		for _, k := range []string{"time", "level", "msg", "request_id", "method", "route", "key_id", "deployment", "backends", "status", "attempts", "stream", "latency", "bytes_in", "bytes_out"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i, k, lines[i])
			}
		}
		if m["status"] != want || m["msg"] != "request" {
			t.Errorf("line %d: status %v msg %v", i, m["status"], m["msg"])
		}
		if n, _ := m["bytes_out"].(float64); n == 0 {
			t.Errorf("status %v: bytes_out 0, want the answer's bytes", want)
		}
	}
	if strings.Contains(out.String(), clientKey) || strings.Contains(out.String(), "wrong-key") {
		t.Error("a key reached the access log")
	}
}
