package drills

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/leakcheck"
	"github.com/llmgate/llmgate/internal/logtest"
	"github.com/llmgate/llmgate/internal/sim"
)

var longFlag = flag.Bool("drills.long", false, "run the long form of the drills (same as LLMGATE_DRILLS=long)")

// long reports whether the long form was asked for.
func long() bool { return *longFlag || os.Getenv("LLMGATE_DRILLS") == "long" }

// scenarioRequests is the number of client requests per fault scenario.
func scenarioRequests() int {
	if long() {
		return 1000
	}
	return 160
}

// concurrency is the number of clients driving each drill.
const concurrency = 8

// hungAfter is how long a client waits for a complete answer before it
// counts the request as hung. Every drill bounds its upstream waits far
// below it.
const hungAfter = 15 * time.Second

// The secrets. They are distinctive so that a search for them in anything
// an upstream received or the gateway logged cannot miss.
const (
	clientKey = "ck-DRILL-CLIENT-SECRET-5b8e1f0c93a7"
	adminKey  = "ak-DRILL-ADMIN-SECRET-22c4d9e7f1"
	keyName   = "drill-team"
)

// secretMarkers are substrings of every secret above and of every backend key.
var secretMarkers = []string{"DRILL-CLIENT-SECRET", "DRILL-ADMIN-SECRET", "DRILL-UPSTREAM-SECRET"}

// backendKey is the api_key of backend name, and the key its simulator requires.
func backendKey(name string) string { return "bk-" + name + "-DRILL-UPSTREAM-SECRET" }

func TestMain(m *testing.M) {
	flag.Parse()
	stopWatch := stalls.watch()
	code := m.Run()
	stopWatch()
	if code == 0 {
		if err := leakcheck.Wait(10 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// stalls records the times the whole test process stood still (a
// ticker firing late): on a shared CI machine a stall of seconds fires
// every timeout at once, and a drill's report says so when it happened.
var stalls stallWatch

type stallWatch struct {
	mu     sync.Mutex // guards events
	events []stall
}

type stall struct {
	at  time.Time     // when the late tick came
	lag time.Duration // how late it came
}

// watch ticks every 10 ms until the returned func is called.
func (s *stallWatch) watch() (stop func()) {
	const every = 10 * time.Millisecond
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if lag := now.Sub(last) - every; lag > 50*time.Millisecond {
					s.mu.Lock()
					if len(s.events) < 10000 {
						s.events = append(s.events, stall{now, lag})
					}
					s.mu.Unlock()
				}
				last = now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// worst returns the longest stall that ended between from and to.
func (s *stallWatch) worst(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w time.Duration
	for _, e := range s.events {
		if e.at.After(from) && e.at.Before(to.Add(time.Second)) {
			w = max(w, e.lag)
		}
	}
	return w
}

// ---------------------------------------------------------------------------
// Upstreams.

// upstream is one backend: a handler (usually a simulator) behind an
// httptest server, wrapped to count what it received, to catch a client
// credential reaching it, and to time its own answers.
type upstream struct {
	name string
	sim  *sim.Server // nil for a hand-written handler
	srv  *httptest.Server
	url  string
	h    http.Handler

	received atomic.Int64
	leaks    atomic.Int64 // requests carrying a client or admin secret
	mu       sync.Mutex   // guards lat, arrivals and ids
	lat      samples
	arrivals []time.Time
	// noArrivals: keep no arrival times (the soak, whose memory is measured).
	noArrivals bool
	// ids maps each X-Drill-Id received to its arrival time.
	ids       map[string]time.Time
	closeOnce sync.Once
}

// simOptions are the drills' simulator defaults: ms-scale latency.
func simOptions(name string) sim.Options {
	return sim.Options{Key: backendKey(name), TTFT: 10 * time.Millisecond, TokenInterval: time.Millisecond, Seed: int64(len(name))}
}

// newSim starts a simulator named name with opts (Key is set to the backend's key).
func newSim(t testing.TB, name string, opts sim.Options) *upstream {
	t.Helper()
	opts.Key = backendKey(name)
	s := sim.New(opts)
	u := newUpstream(t, name, s)
	u.sim = s
	return u
}

// newUpstream serves h as backend name until the test ends.
func newUpstream(t testing.TB, name string, h http.Handler) *upstream {
	t.Helper()
	u := &upstream{name: name, h: h}
	u.srv = httptest.NewUnstartedServer(u)
	u.srv.Config.ErrorLog = slogDiscard()
	u.srv.Start()
	u.url = u.srv.URL
	t.Cleanup(u.close)
	return u
}

// close stops the upstream (releasing hung requests first); idempotent.
func (u *upstream) close() {
	u.closeOnce.Do(func() {
		if u.sim != nil {
			u.sim.Close()
		}
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	u.received.Add(1)
	u.mu.Lock()
	if !u.noArrivals && len(u.arrivals) < maxKept {
		u.arrivals = append(u.arrivals, start)
	}
	if id := r.Header.Get("X-Drill-Id"); id != "" && len(u.ids) < maxKept {
		if u.ids == nil {
			u.ids = map[string]time.Time{}
		}
		u.ids[id] = start
	}
	u.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if carriesSecret(r, body) {
		u.leaks.Add(1)
	}
	sw := &statusWriter{ResponseWriter: w}
	u.h.ServeHTTP(sw, r) // a handler that aborts (panics) is not timed
	if sw.status >= 200 && sw.status < 300 {
		d := time.Since(start)
		u.mu.Lock()
		u.lat.add(d)
		u.mu.Unlock()
	}
}

// carriesSecret reports whether a request an upstream received carries a
// client or admin secret in its target, headers or body.
func carriesSecret(r *http.Request, body []byte) bool {
	for _, s := range []string{clientKey, adminKey} {
		if strings.Contains(r.RequestURI, s) || bytes.Contains(body, []byte(s)) {
			return true
		}
		for _, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, s) {
					return true
				}
			}
		}
	}
	return false
}

// latencies returns the durations of the upstream's 2xx answers.
func (u *upstream) latencies() []time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lat.values()
}

// arrivedAt returns when the request with X-Drill-Id id arrived, if it did.
func (u *upstream) arrivedAt(id string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	at, ok := u.ids[id]
	return at, ok
}

func (u *upstream) arrivalTimes() []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.arrivals)
}

// statusWriter records the status; Unwrap lets http.ResponseController
// reach the connection (flush, hijack).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// closedURL returns a URL on which nothing listens (connection refused).
func closedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func slogDiscard() *log.Logger { return slog.NewLogLogger(slog.DiscardHandler, slog.LevelError) }

// ---------------------------------------------------------------------------
// Config.

// backendSpec is one backend of a drill's config.
type backendSpec struct {
	name   string
	url    string
	weight int // < 0: unset (1)
}

func be(u *upstream) backendSpec { return backendSpec{name: u.name, url: u.url, weight: -1} }

func beURL(name, url string) backendSpec { return backendSpec{name: name, url: url, weight: -1} }

func (b backendSpec) w(weight int) backendSpec { b.weight = weight; return b }

// drillConfig builds the config of a drill: one client key, the backends
// (each with its own api_key), ms-scale retry timing, short timeouts, and
// the settings in set, addressed by dotted paths ("timeouts.total",
// "keys.0.max_streams", "routing.circuit.cooldown").
func drillConfig(t testing.TB, backends []backendSpec, set map[string]any) *config.Config {
	t.Helper()
	cfg, err := config.Parse("drill.yaml", drillYAML(t, backends, set), noEnv)
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return cfg
}

func noEnv(string) (string, bool) { return "", false }

func drillYAML(t testing.TB, backends []backendSpec, set map[string]any) []byte {
	t.Helper()
	bs := make([]any, 0, len(backends))
	for _, b := range backends {
		m := map[string]any{"name": b.name, "url": b.url, "api_key": backendKey(b.name)}
		if b.weight >= 0 {
			m["weight"] = b.weight
		}
		bs = append(bs, m)
	}
	doc := map[string]any{
		"listen":   "127.0.0.1:0",
		"keys":     []any{map[string]any{"name": keyName, "key": clientKey}},
		"backends": bs,
		"retry":    map[string]any{"count": 3, "interval": "10ms", "delta": "10ms", "max_interval": "50ms"},
		"timeouts": map[string]any{
			"connect": "1s", "response_header": "10s", "stream_idle": "10s", "read_header": "2s",
			"idle": "30s", "shutdown_grace": "5s", "total": "30s",
		},
		"routing": map[string]any{
			"max_wait":   "100ms",
			"slow_start": "200ms",
			"circuit":    map[string]any{"cooldown": "300ms"},
		},
	}
	for path, v := range set {
		setPath(t, doc, strings.Split(path, "."), v)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return out
}

// setPath sets doc[p0][p1]... = v, creating maps on the way; a numeric
// segment indexes a list.
func setPath(t testing.TB, node any, path []string, v any) {
	t.Helper()
	switch n := node.(type) {
	case map[string]any:
		if len(path) == 1 {
			n[path[0]] = v
			return
		}
		next, ok := n[path[0]]
		if !ok {
			next = map[string]any{}
			n[path[0]] = next
		}
		setPath(t, next, path[1:], v)
	case []any:
		i, err := strconv.Atoi(path[0])
		if err != nil || i < 0 || i >= len(n) {
			t.Fatalf("config path: bad index %q", path[0])
		}
		if len(path) == 1 {
			n[i] = v
			return
		}
		setPath(t, n[i], path[1:], v)
	default:
		t.Fatalf("config path: %q is not a map or list", path[0])
	}
}

// ---------------------------------------------------------------------------
// Gateway.

// gateway is an App served by app.Serve on 127.0.0.1:0, as in production,
// logging JSON at debug level into a buffer that is searched for secrets
// when the test ends.
type gateway struct {
	app  *app.App
	url  string
	addr string
	log  *logBuffer

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	err      error
}

func startGateway(t testing.TB, cfg *config.Config) *gateway {
	t.Helper()
	return startGatewayIn(t, context.Background(), cfg)
}

// startGatewayIn is startGateway serving until parent is done, or stop.
func startGatewayIn(t testing.TB, parent context.Context, cfg *config.Config) *gateway {
	t.Helper()
	return startGatewayLog(t, parent, cfg, &logBuffer{})
}

// startGatewayLog is startGatewayIn logging to log.
func startGatewayLog(t testing.TB, parent context.Context, cfg *config.Config, log *logBuffer) *gateway {
	t.Helper()
	g := &gateway{log: log, done: make(chan error, 1)}
	logger := slog.New(slog.NewJSONHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, app.Options{Logger: logger})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.app, g.addr, g.url = a, ln.Addr().String(), "http://"+ln.Addr().String()
	ctx, cancel := context.WithCancel(parent)
	g.cancel = cancel
	go func() { g.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("gateway Serve: %v", err)
		}
		checkLog(t, g.log)
	})
	return g
}

// stop cancels Serve and waits for it to drain and return.
func (g *gateway) stop() error {
	g.stopOnce.Do(func() {
		g.cancel()
		select {
		case g.err = <-g.done:
		case <-time.After(30 * time.Second):
			g.err = errors.New("Serve did not return within 30s of cancel")
		}
	})
	return g.err
}

// logBuffer receives the gateway's JSON log, one line per Write. It
// searches every line for secrets and counts the access lines as they come,
// and keeps the lines unless told not to (the soak, whose memory is measured).
// Safe for concurrent writes.
type logBuffer struct {
	discard bool // keep nothing but the counts

	mu      sync.Mutex // guards the fields below
	b       bytes.Buffer
	lineN   int
	access  int
	bytesN  int64
	secrets []string // lines that carried a secret (at most 10)
}

var accessMarker = []byte(`"msg":"request"`)

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lineN += bytes.Count(p, []byte("\n"))
	l.bytesN += int64(len(p))
	if bytes.Contains(p, accessMarker) {
		l.access++
	}
	for _, m := range secretMarkers {
		if bytes.Contains(p, []byte(m)) && len(l.secrets) < 10 {
			l.secrets = append(l.secrets, string(p))
		}
	}
	if l.discard {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns every log line kept, decoded; a line that is not JSON fails the test.
func (l *logBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	return logtest.Decode(t, l.String())
}

// lineCount counts the log lines written.
func (l *logBuffer) lineCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lineN
}

// accessLines counts the access-log lines ("msg":"request").
func (l *logBuffer) accessLines(testing.TB) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.access
}

// awaitAccessLines waits up to within for the access-line count to reach
// want, and returns the count then; a count past want returns at once.
func (l *logBuffer) awaitAccessLines(want int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		got := l.accessLines(nil)
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logScan counts what checkLog searched, across the whole run.
var logScan struct {
	lines, bytes atomic.Int64
}

// checkLog fails the test if any log line carried a secret: the client
// key, the admin key or a backend key, in any field, at any level.
func checkLog(t testing.TB, l *logBuffer) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	logScan.lines.Add(int64(l.lineN))
	logScan.bytes.Add(l.bytesN)
	for _, line := range l.secrets {
		t.Errorf("a log line carries a secret: %s", line)
	}
	if testing.Verbose() {
		t.Logf("log: %d lines (%d access lines) searched for secrets, %d found", l.lineN, l.access, len(l.secrets))
	}
}
