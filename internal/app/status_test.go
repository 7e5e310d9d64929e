package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/llmgate/llmgate/internal/admin"
	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/sim"
)

// simBackends starts one simulator per name and returns the servers and
// the config's backends section (equal weights).
func simBackends(t testing.TB, names ...string) (map[string]*sim.Server, string) {
	t.Helper()
	sims := map[string]*sim.Server{}
	var b strings.Builder
	b.WriteString("backends:\n")
	for _, n := range names {
		s := sim.New(sim.Options{Seed: int64(len(n))})
		srv := httptest.NewServer(s)
		t.Cleanup(func() { s.Close(); srv.Close() })
		sims[n] = s
		b.WriteString("  - name: " + n + "\n    url: " + srv.URL + "\n")
	}
	return sims, b.String()
}

func getBackends(t testing.TB, base string) admin.BackendsReport {
	t.Helper()
	status, body := adminGet(t, base, "/admin/backends", adminKey)
	if status != http.StatusOK {
		t.Fatalf("GET /admin/backends: got %d %s, want 200", status, body)
	}
	var r admin.BackendsReport
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/admin/backends: %v: %s", err, body)
	}
	return r
}

func backendByName(r admin.BackendsReport, name string) (admin.BackendReport, bool) {
	for _, b := range r.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return admin.BackendReport{}, false
}

func TestAdminEndpointsNeedTheAdminKey(t *testing.T) {
	t.Parallel()
	_, backends := simBackends(t, "a")
	g := startOps(t, opsConfig(t, opsHead+backends), app.Options{})
	tests := []struct {
		path   string
		header [2]string
		want   int
		body   string // a substring of the answer
	}{
		{"/status", [2]string{}, 401, "Admin key required"},
		{"/status", [2]string{"api-key", adminKey}, 200, "<table id=\"backends\">"},
		{"/status", [2]string{"Authorization", "Bearer " + adminKey}, 200, "llmgate"},
		{"/status", [2]string{"api-key", clientKey}, 401, "Admin key required"},
		{"/admin/backends", [2]string{}, 401, "admin key is required"},
		{"/admin/backends", [2]string{"api-key", "wrong"}, 401, "admin key is required"},
		{"/admin/backends", [2]string{"api-key", clientKey}, 401, "client keys cannot use the admin endpoints"},
		{"/admin/backends", [2]string{"Authorization", "Bearer " + clientKey}, 401, "client keys"},
		{"/admin/backends", [2]string{"api-key", adminKey}, 200, `"name":"a"`},
		{"/admin/keys", [2]string{"api-key", adminKey}, 200, `"name":"` + keyName + `"`},
		{"/admin/keys", [2]string{"api-key", clientKey}, 401, "client keys"},
		{"/admin/nothing", [2]string{"api-key", adminKey}, 404, "Not found"},
		{"/debug/pprof/", [2]string{"api-key", adminKey}, 200, "goroutine"},
		{"/debug/pprof/cmdline", [2]string{}, 401, "admin key"},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodGet, g.Srv.URL+tc.path, nil)
		if tc.header[0] != "" {
			req.Header.Set(tc.header[0], tc.header[1])
		}
		resp, body := do(t, req)
		if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s with %s: got %d %.200q, want %d containing %q", tc.path, tc.header[0], resp.StatusCode, body, tc.want, tc.body)
		}
		if strings.Contains(string(body), adminKey) || strings.Contains(string(body), clientKey) {
			t.Errorf("GET %s: the answer holds a key", tc.path)
		}
	}

	// Basic auth (curl -u, a browser's prompt) carries the key as the password.
	req, _ := http.NewRequest(http.MethodGet, g.Srv.URL+"/admin/backends", nil)
	req.SetBasicAuth("admin", adminKey)
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Errorf("basic auth: got %d %s, want 200", resp.StatusCode, body)
	}
	// The page is self-contained and pinned by its policy.
	req, _ = http.NewRequest(http.MethodGet, g.Srv.URL+"/status", nil)
	req.Header.Set("api-key", adminKey)
	resp, body := do(t, req)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("Content-Security-Policy: got %q", csp)
	}
	for _, remote := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(string(body), remote) {
			t.Errorf("status page refers to %q: it must fetch nothing from elsewhere", remote)
		}
	}
}

func TestAdminBackendsAndKeysReport(t *testing.T) {
	t.Parallel()
	sims, backends := simBackends(t, "a", "b")
	g := startOps(t, opsConfig(t, opsHead+backends), app.Options{})
	for range 10 {
		if resp, body := g.send(t, chatPath, chatBody); resp.StatusCode != 200 {
			t.Fatalf("chat: got %d %s", resp.StatusCode, body)
		}
	}
	sims["b"].SetFaults(sim.Faults{Fail429: 1, RetryAfter429: 30 * time.Second})
	throttled := false
	for range 40 {
		resp, body := g.send(t, chatPath, chatBody)
		if resp.StatusCode != 200 {
			t.Fatalf("chat: got %d %s, want 200 (a takes what b refuses)", resp.StatusCode, body)
		}
		if strings.Contains(resp.Header.Get("X-Llmgate-Trail"), "b:429") {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("b was never tried after it started to throttle")
	}

	r := getBackends(t, g.Srv.URL)
	if len(r.Backends) != 2 {
		t.Fatalf("backends: got %d, want 2", len(r.Backends))
	}
	a, _ := backendByName(r, "a")
	b, _ := backendByName(r, "b")
	if a.State != admin.StateAvailable || !a.Available {
		t.Errorf("a: got state %q available %v, want available", a.State, a.Available)
	}
	if b.State != admin.StateThrottled || b.Available || b.ThrottledUntil == nil || b.ThrottledForMS < 20000 {
		t.Errorf("b: got state %q available %v throttled for %dms, want throttled for about 30s", b.State, b.Available, b.ThrottledForMS)
	}
	if b.Throttles != 1 || b.Recent.Throttles != 1 {
		t.Errorf("b throttles: got %d (recent %d), want 1", b.Throttles, b.Recent.Throttles)
	}
	if a.Recent.Attempts+b.Recent.Attempts < 11 || a.Share+b.Share < 0.99 || a.Share <= 0 || b.Share <= 0 {
		t.Errorf("recent: a %+v share %v, b %+v share %v", a.Recent, a.Share, b.Recent, b.Share)
	}
	if a.LatencyMS <= 0 {
		t.Errorf("a latency: got %v, want > 0", a.LatencyMS)
	}

	status, body := adminGet(t, g.Srv.URL, "/admin/keys", adminKey)
	if status != 200 {
		t.Fatalf("GET /admin/keys: got %d %s", status, body)
	}
	var keys admin.KeysReport
	if err := json.Unmarshal([]byte(body), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys.Keys) != 1 || keys.Keys[0].Name != keyName || len(keys.Keys[0].Models) != 1 {
		t.Fatalf("keys: got %s", body)
	}
	k := keys.Keys[0]
	if m := k.Models[0]; m.Model != "gpt-4o" || m.Requests < 11 || m.Requests != k.Requests {
		t.Errorf("key usage: got %+v, want gpt-4o with every request", k)
	}
	if k.PromptTokens <= 0 || k.CompletionTokens <= 0 {
		t.Errorf("key tokens: got prompt %d completion %d, want both > 0", k.PromptTokens, k.CompletionTokens)
	}
}

// chromium is Debian's browser, which .ci/run installs.
const chromium = "/usr/bin/chromium"

// browser starts a headless Chromium for the test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("status page browser test skipped: %s not found (Debian's chromium package; .ci/run installs it)", chromium)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as ctx: no
	// timeout here; each step below has its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return ctx
}

// browse runs steps with a deadline of d.
func browse(ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// read runs one action that returns a value, with a deadline of d.
func read[T any](ctx context.Context, d time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return chromedp.Run(ctx, a)
}

type css = chromedp.CSS

// TestStatusPageInBrowser drives the page in one headless Chromium, a tab
// per case.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	t.Run("key in fragment, throttling shows", func(t *testing.T) { statusReflectsThrottling(t, tab(t, ctx)) })
	t.Run("login form", func(t *testing.T) { statusLoginForm(t, tab(t, ctx)) })
	t.Run("key in header", func(t *testing.T) { statusKeyHeader(t, tab(t, ctx)) })
}

// tab opens a new tab of the browser of ctx, closed when the test ends.
func tab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as the context of
	// that run: so no timeout here either.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

func statusReflectsThrottling(t *testing.T, ctx context.Context) {
	sims, backends := simBackends(t, "oai-se", "oai-fr")
	g := startOps(t, opsConfig(t, opsHead+backends), app.Options{})
	for range 6 {
		g.send(t, chatPath, chatBody)
	}

	// The key comes in the fragment (never sent to the server, never logged)
	// and the page takes it out of the address bar.
	err := browse(ctx, 20*time.Second,
		chromedp.Navigate(g.Srv.URL+"/status#key="+url.QueryEscape(adminKey)),
		chromedp.WaitVisible(css(`#dashboard`)),
		chromedp.WaitVisible(css(`tr[data-backend="oai-se"][data-state="available"]`)),
		chromedp.WaitVisible(css(`tr[data-backend="oai-fr"][data-state="available"]`)),
		chromedp.WaitVisible(css(`tr[data-key="`+keyName+`"][data-model="gpt-4o"]`)),
	)
	if err != nil {
		t.Fatalf("status page with the admin key: %v", err)
	}
	loc, err := read(ctx, 5*time.Second, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, adminKey) {
		t.Errorf("address bar still holds the key: %s", loc)
	}
	text, err := read(ctx, 5*time.Second, chromedp.Text(css(`#backends tbody`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "oai-se") || !strings.Contains(text, "oai-fr") || strings.Count(text, "available") != 2 {
		t.Errorf("backends table: got %q, want both backends available", text)
	}

	// oai-fr starts to throttle; the page must show it within a few seconds.
	sims["oai-fr"].SetFaults(sim.Faults{Fail429: 1, RetryAfter429: 30 * time.Second})
	hit := false
	for range 40 {
		resp, _ := g.send(t, chatPath, chatBody)
		if strings.Contains(resp.Header.Get("X-Llmgate-Trail"), "oai-fr:429") {
			hit = true
			break
		}
	}
	if !hit {
		t.Fatal("oai-fr was never tried after it started to throttle")
	}
	start := time.Now()
	if err := browse(ctx, 5*time.Second, chromedp.WaitVisible(css(`tr[data-backend="oai-fr"][data-state="throttled"]`))); err != nil {
		t.Fatalf("page did not show oai-fr throttled within 5s: %v", err)
	}
	t.Logf("page showed oai-fr throttled %v after the 429", time.Since(start).Round(time.Millisecond))
	text, err = read(ctx, 5*time.Second, chromedp.Text(css(`tr[data-backend="oai-fr"] td.state`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "throttled") {
		t.Errorf("oai-fr state cell: got %q, want throttled", text)
	}

	png, err := read(ctx, 10*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	if dir := os.Getenv("LLMGATE_SCREENSHOT_DIR"); dir != "" {
		shot = filepath.Join(dir, "status.png")
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}

func statusLoginForm(t *testing.T, ctx context.Context) {
	_, backends := simBackends(t, "a")
	g := startOps(t, opsConfig(t, opsHead+backends), app.Options{})

	err := browse(ctx, 20*time.Second,
		chromedp.Navigate(g.Srv.URL+"/status"),
		chromedp.WaitVisible(css(`#login`)),
		// A client key is refused.
		chromedp.SendKeys(css(`#key`), clientKey),
		chromedp.Click(css(`#login-form button`)),
		chromedp.WaitVisible(css(`#login-error:not(:empty)`)),
	)
	if err != nil {
		t.Fatalf("login with a client key: %v", err)
	}
	errText, err := read(ctx, 5*time.Second, chromedp.Text(css(`#login-error`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errText, "refused") {
		t.Errorf("login error for a client key: got %q, want it refused", errText)
	}
	err = browse(ctx, 20*time.Second,
		chromedp.SendKeys(css(`#key`), adminKey),
		chromedp.Click(css(`#login-form button`)),
		chromedp.WaitVisible(css(`tr[data-backend="a"][data-state="available"]`)),
	)
	if err != nil {
		t.Fatalf("login with the admin key: %v", err)
	}
}

// statusKeyHeader opens the page with the key sent by the browser itself
// in api-key, as a proxy in front of the page would.
func statusKeyHeader(t *testing.T, ctx context.Context) {
	_, backends := simBackends(t, "a", "b")
	g := startOps(t, opsConfig(t, opsHead+backends), app.Options{})
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"api-key": adminKey},
	}); err != nil {
		t.Fatal(err)
	}
	err := browse(ctx, 20*time.Second,
		chromedp.Navigate(g.Srv.URL+"/status"),
		chromedp.WaitVisible(css(`tr[data-backend="a"][data-state="available"]`)),
		chromedp.WaitVisible(css(`tr[data-backend="b"][data-state="available"]`)),
	)
	if err != nil {
		t.Fatalf("status page with the key in a header: %v", err)
	}
}
