package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/sim"
)

// Helpers for the smart-routing tests (routing_test.go): simulator
// instances behind loopback servers that count what they received, a
// config builder that knows priorities, deployments and capacities, and
// small statistics.

// rtNode is one simulated Azure OpenAI resource served on loopback. It
// counts the API calls it receives, the most it had in flight at once and
// the answers it gave by status, and records each call's path.
type rtNode struct {
	Name string
	Sim  *sim.Server
	URL  string

	// hideRateHeaders drops the x-ratelimit-* headers from every answer,
	// so that only a backend's declared tpm/rpm can tell the gateway how
	// much it has left.
	hideRateHeaders bool

	hits     atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64

	mu     sync.Mutex // guards the fields below
	paths  []string
	status map[int]int
	freeAt time.Time // latest end of a cool-down this node announced (retry-after-ms)
}

// rtStartNode starts a simulator with opts as node name. The server and the
// simulator are closed when the test ends (the simulator first, so that hung
// requests are released).
func rtStartNode(t testing.TB, name string, opts sim.Options) *rtNode {
	t.Helper()
	n := &rtNode{Name: name, Sim: sim.New(opts), status: map[int]int{}}
	srv := httptest.NewServer(n)
	t.Cleanup(srv.Close)
	t.Cleanup(n.Sim.Close)
	n.URL = srv.URL
	return n
}

// rtStartNodes starts one simulator with opts per name.
func rtStartNodes(t testing.TB, opts sim.Options, names ...string) []*rtNode {
	t.Helper()
	out := make([]*rtNode, len(names))
	for i, name := range names {
		out[i] = rtStartNode(t, name, opts)
	}
	return out
}

func (n *rtNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/sim") {
		n.Sim.ServeHTTP(w, r)
		return
	}
	n.hits.Add(1)
	cur := n.inflight.Add(1)
	defer n.inflight.Add(-1)
	for {
		p := n.peak.Load()
		if cur <= p || n.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	n.mu.Lock()
	n.paths = append(n.paths, r.URL.Path)
	n.mu.Unlock()
	n.Sim.ServeHTTP(&rtNodeWriter{ResponseWriter: w, n: n}, r)
}

// rtNodeWriter sees the status and headers of a node's answers.
type rtNodeWriter struct {
	http.ResponseWriter
	n     *rtNode
	wrote bool
}

func (w *rtNodeWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		if w.n.hideRateHeaders {
			for k := range h {
				if strings.HasPrefix(k, "X-Ratelimit-") {
					delete(h, k)
				}
			}
		}
		w.n.mu.Lock()
		w.n.status[code]++
		if ms, err := strconv.ParseInt(h.Get("Retry-After-Ms"), 10, 64); err == nil && code == http.StatusTooManyRequests {
			if at := time.Now().Add(time.Duration(ms) * time.Millisecond); at.After(w.n.freeAt) {
				w.n.freeAt = at
			}
		}
		w.n.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rtNodeWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *rtNodeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (the sim's
// reset fault hijacks it).
func (w *rtNodeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hits returns the number of API calls the node received.
func (n *rtNode) Hits() int { return int(n.hits.Load()) }

// Status returns how many answers the node gave with status code.
func (n *rtNode) Status(code int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status[code]
}

// Paths returns the path of every call so far.
func (n *rtNode) Paths() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.paths)
}

// FreeAt returns the end of the latest cool-down the node announced.
func (n *rtNode) FreeAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.freeAt
}

// rtBackend is one backend of a routing test config. Zero fields are left out of
// the YAML, so they take the config's defaults.
type rtBackend struct {
	Name        string
	URL         string
	Weight      *int
	Priority    int
	MaxInflight int
	TPM, RPM    int
	Deployments map[string]string
}

func rtBackendOf(n *rtNode) rtBackend { return rtBackend{Name: n.Name, URL: n.URL} }

func (b rtBackend) weight(w int) rtBackend   { b.Weight = &w; return b }
func (b rtBackend) priority(p int) rtBackend { b.Priority = p; return b }

// rtYAML writes a config with the test's client key, the backends and
// extra YAML appended.
func rtYAML(bs []rtBackend, extra string) string {
	var s strings.Builder
	s.WriteString("listen: 127.0.0.1:0\nkeys:\n  - name: " + keyName + "\n    key: ${CLIENT_KEY}\nbackends:\n")
	for _, b := range bs {
		fmt.Fprintf(&s, "  - name: %s\n    url: %s\n", b.Name, b.URL)
		if b.Weight != nil {
			fmt.Fprintf(&s, "    weight: %d\n", *b.Weight)
		}
		if b.Priority != 0 {
			fmt.Fprintf(&s, "    priority: %d\n", b.Priority)
		}
		if b.MaxInflight != 0 {
			fmt.Fprintf(&s, "    max_inflight: %d\n", b.MaxInflight)
		}
		if b.TPM != 0 {
			fmt.Fprintf(&s, "    tpm: %d\n", b.TPM)
		}
		if b.RPM != 0 {
			fmt.Fprintf(&s, "    rpm: %d\n", b.RPM)
		}
		if len(b.Deployments) > 0 {
			s.WriteString("    deployments:\n")
			for _, k := range slices.Sorted(maps.Keys(b.Deployments)) {
				fmt.Fprintf(&s, "      %s: %s\n", k, b.Deployments[k])
			}
		}
	}
	s.WriteString(extra)
	return s.String()
}

// rtGateway is a gateway over rtBackend backends, with its own client whose
// connection pool fits the tests' concurrency.
type rtGateway struct {
	*gateway
	client *http.Client
}

// rtStart parses the config (failing the test on any problem), builds
// the App and serves it on loopback.
func rtStart(t testing.TB, bs []rtBackend, extra string) *rtGateway {
	t.Helper()
	lookup := func(k string) (string, bool) {
		if k == "CLIENT_KEY" {
			return clientKey, true
		}
		return "", false
	}
	cfg, err := config.Parse("routing.yaml", []byte(rtYAML(bs, extra)), lookup)
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, rtYAML(bs, extra))
	}
	a, log := newApp(t, cfg)
	srv := servePlain(t, a)
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &rtGateway{gateway: &gateway{App: a, Srv: srv, Log: log}, client: &http.Client{Transport: tr}}
}

// rtAnswer is what the client got for one request.
type rtAnswer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Latency time.Duration
	Err     error
}

func (a rtAnswer) Trail() string   { return a.Header.Get("X-Llmgate-Trail") }
func (a rtAnswer) Backend() string { return a.Header.Get("X-Llmgate-Backend") }

// RetryAfterMs returns the answer's retry-after-ms header (-1 if absent).
func (a rtAnswer) RetryAfterMs() time.Duration {
	v, err := strconv.ParseInt(a.Header.Get("Retry-After-Ms"), 10, 64)
	if err != nil {
		return -1
	}
	return time.Duration(v) * time.Millisecond
}

// RetryAfter returns the answer's Retry-After seconds (-1 if absent).
func (a rtAnswer) RetryAfter() time.Duration {
	v, err := strconv.ParseInt(a.Header.Get("Retry-After"), 10, 64)
	if err != nil {
		return -1
	}
	return time.Duration(v) * time.Second
}

// call sends a POST of body to path with extra headers (name, value pairs)
// and reads the whole answer. It never calls t.Fatal, so workers may use it.
func (g *rtGateway) call(ctx context.Context, path, body string, hdr ...string) rtAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.Srv.URL+path, strings.NewReader(body))
	if err != nil {
		return rtAnswer{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", clientKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		return rtAnswer{Err: err, Latency: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rtAnswer{Status: resp.StatusCode, Header: resp.Header, Body: b, Latency: time.Since(start), Err: err}
}

// chatTo sends a small chat request for deployment.
func (g *rtGateway) chatTo(t testing.TB, deployment string, hdr ...string) rtAnswer {
	t.Helper()
	a := g.call(ctxTimeout(t, 20*time.Second), rtPath(deployment), chatBody, hdr...)
	if a.Err != nil {
		t.Fatalf("request: %v", a.Err)
	}
	return a
}

// chatOnce sends one small chat request for gpt-4o.
func (g *rtGateway) chatOnce(t testing.TB, hdr ...string) rtAnswer {
	t.Helper()
	return g.chatTo(t, "gpt-4o", hdr...)
}

func rtPath(name string) string {
	return "/openai/deployments/" + name + "/chat/completions?api-version=2024-10-21"
}

// load sends n chat requests with conc workers and returns every answer in
// the order the requests were numbered.
func (g *rtGateway) load(t testing.TB, n, conc int, body string, hdr ...string) []rtAnswer {
	t.Helper()
	ctx := ctxTimeout(t, 30*time.Second)
	out := make([]rtAnswer, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				out[i] = g.call(ctx, chatPath, body, hdr...)
			}
		})
	}
	wg.Wait()
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("request %d: %v", i, a.Err)
		}
	}
	return out
}

// rtFigures summarises a run.
type rtFigures struct {
	N, OK, Client429 int
	P50, P99, Max    time.Duration
}

func rtSummary(as []rtAnswer) rtFigures {
	f := rtFigures{N: len(as)}
	lat := make([]time.Duration, 0, len(as))
	for _, a := range as {
		if a.Status == http.StatusOK {
			f.OK++
		}
		if a.Status == http.StatusTooManyRequests {
			f.Client429++
		}
		lat = append(lat, a.Latency)
	}
	f.P50, f.P99, f.Max = rtPercentile(lat, 0.50), rtPercentile(lat, 0.99), rtPercentile(lat, 1)
	return f
}

func (f rtFigures) String() string {
	return fmt.Sprintf("success %d/%d (%.1f%%), client 429s %d, p50 %v, p99 %v, max %v",
		f.OK, f.N, 100*float64(f.OK)/float64(max(f.N, 1)), f.Client429,
		f.P50.Round(100*time.Microsecond), f.P99.Round(100*time.Microsecond), f.Max.Round(100*time.Microsecond))
}

// rtPercentile returns the nearest-rank p-quantile (0 < p ≤ 1) of ds.
func rtPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// rtCountBackends counts answers by the backend that served them.
func rtCountBackends(as []rtAnswer) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a.Backend()]++
	}
	return m
}

// rtTotalHits sums the calls received by nodes.
func rtTotalHits(nodes ...*rtNode) int {
	s := 0
	for _, n := range nodes {
		s += n.Hits()
	}
	return s
}

// logLines returns the gateway's log lines with message msg.
func (g *rtGateway) logLines(msg string) []string {
	var out []string
	for line := range strings.Lines(g.Log.String()) {
		if strings.Contains(line, `"msg":"`+msg+`"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// rtSSEEvents splits an SSE body into its events.
func rtSSEEvents(body []byte) []string {
	var out []string
	for ev := range bytes.SplitSeq(body, []byte("\n\n")) {
		if s := strings.TrimSpace(string(ev)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// rtWithin reports whether got is within frac of want (relative).
func rtWithin(got, want time.Duration, frac float64) bool {
	d := got - want
	if d < 0 {
		d = -d
	}
	return float64(d) <= frac*float64(want)
}
