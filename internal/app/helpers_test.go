package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/h1"
	"github.com/llmgate/llmgate/internal/leakcheck"
	"github.com/llmgate/llmgate/internal/logtest"
)

// The client key and its name, as the gateway's config knows them. The key
// is distinctive so that a search for it in anything an upstream received
// or the gateway logged cannot miss.
const (
	clientKey = "ck-CLIENT-SECRET-7f3a9e21d04b"
	keyName   = "team-alpha"
)

// chatPath is a typical Azure chat completions request path.
const chatPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"

// backendKey is the api_key the config gives backend name.
func backendKey(name string) string { return "bk-" + name + "-UPSTREAM-SECRET" }

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := leakcheck.Wait(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// call is one request an upstream received.
type call struct {
	Backend string
	N       int // index of this call among its backend's calls
	Seq     int // index among every call the recorder saw
	At      time.Time
	Method  string
	URI     string // the request target exactly as received
	Header  http.Header
	Body    []byte
}

// behaviour answers one upstream call; c holds what was received.
type behaviour func(w http.ResponseWriter, r *http.Request, c call)

// recorder records every call made to any of its upstreams, in order.
type recorder struct {
	mu    sync.Mutex // guards calls and count
	calls []call
	count map[string]int
}

func newRecorder() *recorder { return &recorder{count: map[string]int{}} }

// upstream starts an httptest server named name that records each call,
// then answers it with do. The server is closed when the test ends.
func (rec *recorder) upstream(t testing.TB, name string, do behaviour) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(rec.handler(name, do))
	t.Cleanup(srv.Close)
	return srv
}

func (rec *recorder) handler(name string, do behaviour) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		c := call{Backend: name, At: at, Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: body}
		rec.mu.Lock()
		c.N = rec.count[name]
		c.Seq = len(rec.calls)
		rec.count[name]++
		rec.calls = append(rec.calls, c)
		rec.mu.Unlock()
		do(w, r, c)
	})
}

// Calls returns a copy of every call so far.
func (rec *recorder) Calls() []call {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]call(nil), rec.calls...)
}

// Count returns the number of calls backend name received.
func (rec *recorder) Count(name string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.count[name]
}

// Backends returns the backend of every call, in order.
func (rec *recorder) Backends() []string {
	var names []string
	for _, c := range rec.Calls() {
		names = append(names, c.Backend)
	}
	return names
}

// Behaviours.

func respond(status int, body string, hdr ...string) behaviour {
	return func(w http.ResponseWriter, _ *http.Request, _ call) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

const completionJSON = `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from upstream"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`

func ok() behaviour { return respond(http.StatusOK, completionJSON) }

func serverError(body string) behaviour { return respond(http.StatusInternalServerError, body) }

// sequence answers the n-th call to the backend with bs[n], repeating the last.
func sequence(bs ...behaviour) behaviour {
	return func(w http.ResponseWriter, r *http.Request, c call) {
		bs[min(c.N, len(bs)-1)](w, r, c)
	}
}

// sse writes events (each already ending in a blank line), flushing after each.
func sse(events ...string) behaviour {
	return func(w http.ResponseWriter, _ *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for _, e := range events {
			_, _ = io.WriteString(w, e)
			w.(http.Flusher).Flush()
		}
	}
}

func chunk(i int, content string) string {
	return fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`+"\n\n", content+strconv.Itoa(i))
}

const doneEvent = "data: [DONE]\n\n"

// Config.

// backend is one backend in a test config. Weight < 0 leaves weight unset.
type backend struct {
	Name   string
	URL    string
	Weight int
}

func be(name, url string) backend { return backend{Name: name, URL: url, Weight: -1} }

func weighted(name, url string, w int) backend { return backend{Name: name, URL: url, Weight: w} }

// configYAML writes a config with the test key, the backends (each with its
// api_key from ${BACKEND_KEY_i}) and extra YAML appended (retry, timeouts...).
func configYAML(bs []backend, extra string) string {
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nkeys:\n  - name: " + keyName + "\n    key: ${CLIENT_KEY}\nbackends:\n")
	for i, x := range bs {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    api_key: ${BACKEND_KEY_%d}\n", x.Name, x.URL, i)
		if x.Weight >= 0 {
			fmt.Fprintf(&b, "    weight: %d\n", x.Weight)
		}
	}
	b.WriteString(extra)
	return b.String()
}

// parseConfig parses YAML with ${CLIENT_KEY} and ${BACKEND_KEY_i} resolved
// from the test's values, never from the process environment.
func parseConfig(t testing.TB, bs []backend, extra string) *config.Config {
	t.Helper()
	env := map[string]string{"CLIENT_KEY": clientKey}
	for i, x := range bs {
		env["BACKEND_KEY_"+strconv.Itoa(i)] = backendKey(x.Name)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Parse("test.yaml", []byte(configYAML(bs, extra)), lookup)
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return cfg
}

// syncBuffer is the gateway's log: a buffer safe for the logger's
// concurrent writes.
type syncBuffer struct{ logtest.Buffer }

// accessLines returns the decoded access-log lines ("msg":"request").
func (s *syncBuffer) accessLines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range s.Lines(t) {
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// gateway is an App served by an httptest server.
type gateway struct {
	App *app.App
	Srv *plainServer
	Log *syncBuffer
}

// plainServer serves an App's handler on a loopback listener with the
// server App.Serve uses for plain HTTP (h1.Server), like httptest.Server.
type plainServer struct {
	URL      string
	Listener net.Listener
	srv      *h1.Server
	done     chan struct{}
}

func servePlain(t testing.TB, a *app.App) *plainServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := a.PlainServer()
	p := &plainServer{URL: "http://" + ln.Addr().String(), Listener: ln, srv: s, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(p.Close)
	return p
}

// Close closes the listener and every connection, and waits for Serve.
func (p *plainServer) Close() {
	_ = p.srv.Close()
	<-p.done
}

// Drain shuts the server down gracefully: once it returns, every handler
// has returned (and so has logged its request).
func (p *plainServer) Drain(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	<-p.done
}

// newApp builds an App logging JSON to a buffer, at debug level so that a
// secret logged at any level would be seen.
func newApp(t testing.TB, cfg *config.Config) (*app.App, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, app.Options{Logger: logger})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	return a, log
}

// startGateway builds the App from bs and extra and serves its Handler.
func startGateway(t testing.TB, bs []backend, extra string) *gateway {
	t.Helper()
	a, log := newApp(t, parseConfig(t, bs, extra))
	return &gateway{App: a, Srv: servePlain(t, a), Log: log}
}

// request builds a request to the gateway carrying the client key in api-key.
func (g *gateway) request(t testing.TB, method, path string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, g.Srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", clientKey)
	return req
}

// do sends req and returns the response with its whole body.
// bearerCall sends method to url with key as a Bearer token (OpenAI's
// style) and body as JSON, and returns the response and its body.
func bearerCall(t testing.TB, method, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp, b
}

// chat posts a small chat request with the client key and returns the answer.
func (g *gateway) chat(t testing.TB) (*http.Response, []byte) {
	t.Helper()
	return do(t, g.request(t, http.MethodPost, chatPath, []byte(chatBody)))
}

const chatBody = `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":16}`

// closedURL returns a URL on which nothing listens (connection refused).
func closedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// errorBody decodes a gateway-made OpenAI error body.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func decodeError(t testing.TB, b []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body is not JSON: %q: %v", b, err)
	}
	if e.Error.Message == "" {
		t.Fatalf("error body has no message: %s", b)
	}
	return e
}

// waitFor waits up to d for ch to be closed or receive, failing with what otherwise.
func waitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}

// blockUntilGone parks an upstream call until its request is cancelled (or
// 10s pass) and reports the cancellation on gone.
func blockUntilGone(arrived chan<- struct{}, gone chan<- struct{}) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ call) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}
}

// ctxTimeout returns a context cancelled after d or when the test ends.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// httptestServer serves h until the test ends.
func httptestServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// inProcess is an upstream transport that hands each request to the handler
// registered for its host, with no sockets: for tests that need volume, not
// the network. Safe for concurrent use once built.
type inProcess map[string]http.Handler

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	h, ok := t[r.URL.Host]
	if !ok {
		return nil, fmt.Errorf("inProcess: no upstream for host %q", r.URL.Host)
	}
	if r.Body != nil {
		defer r.Body.Close()
	}
	// A server request as the upstream would see it.
	sr := r.Clone(r.Context())
	sr.RequestURI = r.URL.RequestURI()
	sr.Host = r.URL.Host
	if r.Body == nil {
		sr.Body = http.NoBody
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, sr)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}
