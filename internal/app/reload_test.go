package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
)

// fileGateway is an App serving on loopback whose config lives in a file
// it watches.
type fileGateway struct {
	App  *app.App
	URL  string
	Path string
	Log  *syncBuffer
}

// fileHead starts a config written to a file: the keys are literal there,
// since a reload reads the process environment.
const fileHead = "listen: 127.0.0.1:0\nkeys:\n  - name: " + keyName + "\n    key: " + clientKey +
	"\nadmin:\n  key: " + adminKey + "\nretry:\n  count: 3\n  interval: 1ms\n"

// writeConfig replaces the file atomically, as editors and Kubernetes do.
func writeConfig(t testing.TB, path, yaml string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serveFile writes yaml to a file, builds the App from it and serves it on
// loopback (plain HTTP, or TLS when the config says so) until the test ends.
func serveFile(t testing.TB, yaml string) *fileGateway {
	t.Helper()
	return serveFileWatching(t, yaml, 20*time.Millisecond)
}

// serveFileWatching is serveFile with the file watched every watch (0: not
// watched, for tests that count what their own reloads log).
func serveFileWatching(t testing.TB, yaml string, watch time.Duration) *fileGateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "llmgate.yaml")
	writeConfig(t, path, yaml)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	log := &syncBuffer{}
	a, err := app.New(cfg, app.Options{
		Logger:        slog.New(slog.NewJSONHandler(log, nil)),
		ConfigPath:    path,
		WatchInterval: watch,
	})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	scheme := "http://"
	if cfg.TLS.CertFile != "" {
		scheme = "https://"
	}
	return &fileGateway{App: a, URL: scheme + ln.Addr().String(), Path: path, Log: log}
}

// waitLogged waits up to 5s for a log line holding every one of parts.
func (g *fileGateway) waitLogged(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for line := range strings.Lines(g.Log.String()) {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", parts, g.Log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countLogged(log *syncBuffer, part string) int {
	return strings.Count(log.String(), part)
}

// waitConfig waits up to 5s for the App's config to satisfy cond.
func waitConfig(t testing.TB, a *app.App, what string, cond func(*config.Config) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(a.Config()) {
		if time.Now().After(deadline) {
			t.Fatalf("config never showed %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// splitUpstream answers streams with a few spaced events and other
// requests with a completion, so streams are in flight during a reload.
func splitUpstream(w http.ResponseWriter, r *http.Request, c call) {
	if !strings.Contains(string(c.Body), `"stream":true`) {
		ok()(w, r, c)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for i := range 4 {
		_, _ = io.WriteString(w, chunk(i, "tok"))
		w.(http.Flusher).Flush()
		time.Sleep(2 * time.Millisecond)
	}
	_, _ = io.WriteString(w, doneEvent)
}

// load sends requests from workers goroutines, alternating plain requests
// and streams, until stop is closed or max requests were sent. It counts
// each outcome; a failure is any answer but a complete 200.
type load struct {
	sent, good atomic.Int64
	mu         sync.Mutex // guards failures
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t testing.TB, base string, workers int, max int64) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if l.sent.Add(1) > max {
					l.sent.Add(-1)
					return
				}
				stream := (i+w)%2 == 1
				body := chatBody
				if stream {
					body = opsStreamBody
				}
				req, _ := http.NewRequest(http.MethodPost, base+chatPath, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("api-key", clientKey)
				resp, err := client.Do(req)
				if err != nil {
					l.fail(fmt.Sprintf("transport: %v", err))
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					l.fail(fmt.Sprintf("read: %v", err))
				case resp.StatusCode != http.StatusOK:
					l.fail(fmt.Sprintf("status %d: %s", resp.StatusCode, b))
				case stream && (!strings.HasSuffix(string(b), doneEvent) || strings.Contains(string(b), `"error"`)):
					l.fail(fmt.Sprintf("stream incomplete: %q", b))
				default:
					l.good.Add(1)
				}
			}
		})
	}
	return l
}

func (l *load) fail(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, s)
}

// waitSent waits until n more requests than now have been answered well.
func (l *load) waitGood(t testing.TB, n int64) {
	t.Helper()
	target := l.good.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for l.good.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("load stalled: %d good answers, want %d (failures: %v)", l.good.Load(), target, l.failures)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// finish stops the load and checks that no request was lost.
func (l *load) finish(t testing.TB) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if len(l.failures) > 0 {
		t.Errorf("%d of %d requests failed, first: %s", len(l.failures), l.sent.Load(), l.failures[0])
	}
	if l.good.Load() != l.sent.Load() {
		t.Errorf("answered well: got %d, want every one of %d sent", l.good.Load(), l.sent.Load())
	}
}

func backendsYAML(urls map[string]string, weights ...any) string {
	var b strings.Builder
	b.WriteString("backends:\n")
	for i := 0; i+1 < len(weights); i += 2 {
		name := weights[i].(string)
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    weight: %d\n", name, urls[name], weights[i+1].(int))
	}
	return b.String()
}

// countsSince returns each backend's calls after the marks.
func countsSince(rec *recorder, marks map[string]int, names ...string) map[string]int {
	out := map[string]int{}
	for _, n := range names {
		out[n] = rec.Count(n) - marks[n]
	}
	return out
}

func marks(rec *recorder, names ...string) map[string]int {
	m := map[string]int{}
	for _, n := range names {
		m[n] = rec.Count(n)
	}
	return m
}

func TestReloadUnderLoadLosesNothingAndShiftsTheSplit(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	urls := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		urls[n] = rec.upstream(t, n, splitUpstream).URL
	}
	// Phase 1: everything to a (b has weight 0: only after a was tried).
	g := serveFile(t, fileHead+backendsYAML(urls, "a", 1, "b", 0))
	l := startLoad(t, g.URL, 4, 3000)
	l.waitGood(t, 60)
	if n := rec.Count("b"); n != 0 {
		t.Fatalf("phase 1: b got %d calls, want 0", n)
	}

	// Phase 2, by a change of the file: a drained, b weighted, c added.
	writeConfig(t, g.Path, fileHead+backendsYAML(urls, "a", 0, "b", 1, "c", 1))
	waitConfig(t, g.App, "backend c", func(c *config.Config) bool { return len(c.Backends) == 3 })
	l.waitGood(t, 40) // requests that began on the old config finish
	m := marks(rec, "a", "b", "c")
	l.waitGood(t, 200)
	got := countsSince(rec, m, "a", "b", "c")
	if got["a"] != 0 || got["b"] < 50 || got["c"] < 50 {
		t.Errorf("phase 2 split: got %v, want a 0 and b, c about even", got)
	}

	// Phase 3, by SIGHUP's path: c takes three quarters.
	writeConfig(t, g.Path, fileHead+backendsYAML(urls, "a", 0, "b", 1, "c", 3))
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	l.waitGood(t, 40)
	m = marks(rec, "a", "b", "c")
	l.waitGood(t, 300)
	got = countsSince(rec, m, "a", "b", "c")
	if got["a"] != 0 || got["c"] < 2*got["b"] || got["b"] == 0 {
		t.Errorf("phase 3 split: got %v, want a 0 and c about 3 times b", got)
	}
	l.finish(t)
	// The watcher saw phase 2 (and may have seen phase 3 before ReloadFile).
	if n := countLogged(g.Log, `"msg":"config reloaded","file":"`+g.Path+`","trigger":"file change"`); n < 1 || n > 2 {
		t.Errorf("config reloaded on file change: got %d log lines, want 1 or 2", n)
	}
	if n := countLogged(g.Log, `"msg":"config reloaded","file":"`+g.Path+`","trigger":"signal"`); n != 1 {
		t.Errorf("config reloaded on signal: got %d log lines, want 1", n)
	}
	if n := countLogged(g.Log, "config reload rejected"); n != 0 {
		t.Errorf("config reload rejected log lines: got %d, want 0", n)
	}
}

func TestReloadRejectsBrokenConfigWhileTrafficContinues(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	urls := map[string]string{"a": rec.upstream(t, "a", splitUpstream).URL, "b": rec.upstream(t, "b", splitUpstream).URL}
	good := fileHead + backendsYAML(urls, "a", 1, "b", 1)
	g := serveFile(t, good)
	before := g.App.Config()
	l := startLoad(t, g.URL, 3, 3000)
	l.waitGood(t, 30)

	// A typo and a missing URL: the watcher rejects the file, naming both.
	writeConfig(t, g.Path, fileHead+"backends:\n  - name: a\n    url: "+urls["a"]+"\n    wieght: 2\n  - name: b\n")
	line := g.waitLogged(t, "config reload rejected")
	for _, want := range []string{`backends[0].wieght: unknown key`, `backends[1].url: required`, `"trigger":"file change"`} {
		if !strings.Contains(line, want) {
			t.Errorf("rejection log line: got %s, want it to contain %q", line, want)
		}
	}
	l.waitGood(t, 50)
	if g.App.Config() != before {
		t.Error("a rejected config replaced the config in use")
	}
	// SIGHUP's path rejects it the same way, once more.
	if err := g.App.ReloadFile(g.Path); err == nil {
		t.Error("ReloadFile of a broken file: got nil error")
	}
	if n := countLogged(g.Log, "config reload rejected"); n != 2 {
		t.Errorf("rejection log lines: got %d, want 2 (one per attempt, none while the file stays the same)", n)
	}
	f := scrape(t, g.URL)
	if got := f.value("llmgate_config_reloads_total", lbl{"result": "rejected"}); got != 2 {
		t.Errorf("llmgate_config_reloads_total{result=rejected}: got %v, want 2", got)
	}

	// Fixed: the next change goes in.
	writeConfig(t, g.Path, fileHead+backendsYAML(urls, "a", 1, "b", 0))
	waitConfig(t, g.App, "b at weight 0", func(c *config.Config) bool { return c != before })
	l.waitGood(t, 30)
	l.finish(t)
	if f := scrape(t, g.URL); f.value("llmgate_config_reloads_total", lbl{"result": "ok"}) != 1 {
		t.Errorf("llmgate_config_reloads_total{result=ok}: got %v, want 1", f.value("llmgate_config_reloads_total", lbl{"result": "ok"}))
	}
}

func TestReloadKeepsBackendState(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	urls := map[string]string{
		"a": rec.upstream(t, "a", ok()).URL,
		"b": rec.upstream(t, "b", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"slow down"}}`, "Retry-After", "30")).URL,
		"c": rec.upstream(t, "c", ok()).URL,
	}
	g := serveFile(t, fileHead+"backends:\n  - name: a\n    url: "+urls["a"]+"\n    priority: 2\n  - name: b\n    url: "+urls["b"]+"\n")
	resp, body := sendTo(t, g.URL, chatPath, chatBody, clientKey)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Llmgate-Trail") != "b:429(ra=30s),a:200" {
		t.Fatalf("chat: got %d %s trail %q, want b:429 then a:200", resp.StatusCode, body, resp.Header.Get("X-Llmgate-Trail"))
	}
	r := getBackends(t, g.URL)
	bBefore, _ := backendByName(r, "b")
	if bBefore.State != "throttled" {
		t.Fatalf("b before reload: got %q, want throttled", bBefore.State)
	}

	// Weights change, c joins, a leaves.
	writeConfig(t, g.Path, fileHead+"backends:\n  - name: b\n    url: "+urls["b"]+"\n    weight: 5\n  - name: c\n    url: "+urls["c"]+"\n    priority: 2\n")
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	r = getBackends(t, g.URL)
	if len(r.Backends) != 2 {
		t.Fatalf("backends after reload: got %+v, want b and c", r.Backends)
	}
	b, _ := backendByName(r, "b")
	if b.State != "throttled" || b.ThrottledUntil == nil || !b.ThrottledUntil.Equal(*bBefore.ThrottledUntil) ||
		b.Requests != bBefore.Requests || b.Throttles != 1 || b.Weight != 5 {
		t.Errorf("b after reload: got %+v, want the same throttle, counters and weight 5", b)
	}
	// b is still cooling down, so the request goes to c without calling b.
	resp, body = sendTo(t, g.URL, chatPath, chatBody, clientKey)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Llmgate-Backend") != "c" || rec.Count("b") != 1 {
		t.Errorf("after reload: got %d %s from %q, b called %d times; want c to answer and b left alone",
			resp.StatusCode, body, resp.Header.Get("X-Llmgate-Backend"), rec.Count("b"))
	}
}

func TestReloadLetsInFlightStreamFinishOnItsConfig(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	rec := newRecorder()
	a := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, chunk(0, "tok"))
		w.(http.Flusher).Flush()
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for i := 1; i < 4; i++ {
			_, _ = io.WriteString(w, chunk(i, "tok"))
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, doneEvent)
	})
	b := rec.upstream(t, "b", ok())
	g := serveFile(t, fileHead+"backends:\n  - name: a\n    url: "+a.URL+"\n")

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, g.URL+chatPath, strings.NewReader(opsStreamBody))
		req.Header.Set("api-key", clientKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(body), err: err}
	}()
	waitFor(t, started, 5*time.Second, "the stream to start")

	// a is removed while its stream is in flight; new requests go to b.
	writeConfig(t, g.Path, fileHead+"backends:\n  - name: b\n    url: "+b.URL+"\n")
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	if resp, body := sendTo(t, g.URL, chatPath, chatBody, clientKey); resp.StatusCode != 200 || resp.Header.Get("X-Llmgate-Backend") != "b" {
		t.Errorf("after reload: got %d %s from %q, want 200 from b", resp.StatusCode, body, resp.Header.Get("X-Llmgate-Backend"))
	}
	close(release)
	res := waitFor(t, done, 5*time.Second, "the stream to end")
	if res.err != nil || res.status != 200 || strings.Count(res.body, "chat.completion.chunk") != 4 || !strings.HasSuffix(res.body, doneEvent) {
		t.Errorf("stream begun before the reload: got %d %v %q, want all 4 chunks and [DONE]", res.status, res.err, res.body)
	}
}

func TestReloadLogsSettingsThatNeedARestart(t *testing.T) {
	t.Parallel()
	up := newRecorder().upstream(t, "a", ok())
	// Not watched: the watcher would reload each change a second time.
	g := serveFileWatching(t, fileHead+"backends:\n  - name: a\n    url: "+up.URL+"\n", 0)
	writeConfig(t, g.Path, strings.Replace(fileHead, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1)+
		"tracing:\n  endpoint: http://127.0.0.1:4318\nbackends:\n  - name: a\n    url: "+up.URL+"\n")
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	g.waitLogged(t, "config change needs a restart", `"setting":"listen"`)
	g.waitLogged(t, "config change needs a restart", `"setting":"tracing"`)
	// The config in use keeps the running values: the warning comes back
	// while the file still asks for the change, and going back to the
	// running value warns of nothing.
	if got := g.App.Config().Listen; got != "127.0.0.1:0" {
		t.Errorf("listen in the config in use: got %q, want the running 127.0.0.1:0", got)
	}
	warned := func(setting string) int {
		return strings.Count(g.Log.String(), `"setting":"`+setting+`"`)
	}
	writeConfig(t, g.Path, strings.Replace(fileHead, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1)+
		"backends:\n  - name: a\n    url: "+up.URL+"\n    weight: 2\n")
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	if n := warned("listen"); n != 2 {
		t.Errorf("listen warnings after a second reload still asking for it: got %d, want 2", n)
	}
	writeConfig(t, g.Path, fileHead+"tracing:\n  endpoint: http://127.0.0.1:4318\nbackends:\n  - name: a\n    url: "+up.URL+"\n")
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	if n := warned("listen"); n != 2 {
		t.Errorf("listen warnings after going back to the running value: got %d, want still 2", n)
	}
}

// Reloading a file whose tracing section did not change (sample_ratio
// given or not) warns of nothing about tracing.
func TestReloadKeepsUnchangedTracingQuiet(t *testing.T) {
	t.Parallel()
	up := newRecorder().upstream(t, "a", ok())
	for _, tracing := range []string{
		"tracing:\n  endpoint: http://127.0.0.1:21601\n",
		"tracing:\n  endpoint: http://127.0.0.1:21601\n  sample_ratio: 0\n",
	} {
		g := serveFile(t, fileHead+tracing+"backends:\n  - name: a\n    url: "+up.URL+"\n")
		writeConfig(t, g.Path, fileHead+tracing+"backends:\n  - name: a\n    url: "+up.URL+"\n    weight: 2\n")
		if err := g.App.ReloadFile(g.Path); err != nil {
			t.Fatalf("ReloadFile: %v", err)
		}
		g.waitLogged(t, "config reloaded")
		if n := countLogged(g.Log, `"setting":"tracing"`); n != 0 {
			t.Errorf("%q: tracing restart warnings after a reload that kept it: got %d, want 0", tracing, n)
		}
	}
}

// A store change needs a restart: until then nothing uses the new values,
// not the proxy, not /readyz.
func TestReloadKeepsTheStoreInUse(t *testing.T) {
	t.Parallel()
	up := newRecorder().upstream(t, "a", ok())
	g := serveFile(t, fileHead+"backends:\n  - name: a\n    url: "+up.URL+"\n")
	writeConfig(t, g.Path, fileHead+"store:\n  on_failure: closed\n  timeout: 1s\nbackends:\n  - name: a\n    url: "+up.URL+"\n")
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	g.waitLogged(t, "config change needs a restart", `"setting":"store"`)
	if st := g.App.Config().Store; st.OnFailure == "closed" || st.Timeout.D() == time.Second {
		t.Errorf("store in the config in use after a reload: got %+v, want the running one", st)
	}
}

// selfSigned writes a certificate for 127.0.0.1 with serial and its key.
func selfSigned(t testing.TB, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "llmgate test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// servedSerial connects afresh and returns the serial of the certificate served.
func servedSerial(t testing.TB, base string) int64 {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} //nolint:gosec // the test reads the served certificate
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatal("no TLS certificate served")
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

// serveTLS serves a gateway over TLS with a certificate of serial 1 in dir,
// checks that it is the one served, and returns the gateway and the key file.
func serveTLS(t *testing.T, dir string) (g *fileGateway, keyFile string) {
	t.Helper()
	certFile, keyFile := selfSigned(t, dir, 1)
	up := newRecorder().upstream(t, "a", ok())
	yaml := fileHead + "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\nbackends:\n  - name: a\n    url: " + up.URL + "\n"
	g = serveFile(t, yaml)
	if got := servedSerial(t, g.URL); got != 1 {
		t.Fatalf("certificate serial: got %d, want 1", got)
	}
	return g, keyFile
}

func TestTLSCertificateIsReadAgainOnReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g, keyFile := serveTLS(t, dir)
	// A broken key file is rejected; the old certificate keeps serving.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.App.ReloadFile(g.Path); err == nil {
		t.Error("ReloadFile with a broken key: got nil error")
	}
	if got := servedSerial(t, g.URL); got != 1 {
		t.Errorf("certificate serial after a rejected reload: got %d, want 1", got)
	}
	// Renewed files are picked up.
	selfSigned(t, dir, 2)
	if err := g.App.ReloadFile(g.Path); err != nil {
		t.Fatalf("ReloadFile: %v", err)
	}
	if got := servedSerial(t, g.URL); got != 2 {
		t.Errorf("certificate serial after reload: got %d, want 2", got)
	}
}

// Renewed certificate files (cert-manager, certbot) are served without a
// signal or a change to the config: the watcher looks at them too.
func TestTLSCertificateFilesRenewedArePickedUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g, _ := serveTLS(t, dir)
	time.Sleep(100 * time.Millisecond) // the watcher has seen the files as they are
	selfSigned(t, dir, 3)
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, g.URL) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
