// Package admin serves the operator's endpoints: the live status page
// (/status), its JSON (/admin/backends, /admin/keys), Prometheus metrics
// (/metrics) and profiling (/debug/pprof/).
//
// Every endpoint needs the admin key from the config (admin.key), in
// api-key, Authorization: Bearer, or as the password of Basic auth; a client
// key is always refused, with the answer a wrong key gets. /metrics is
// public unless admin.metrics_public is false.
// With no admin key configured the endpoints answer 404. The status page is
// embedded in the binary: no build step, nothing fetched from elsewhere.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/llmgate/llmgate/internal/api/openai"
	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/metrics"
	"github.com/llmgate/llmgate/internal/upstream"
)

// Options configures New. Config is required; nil fields other than it
// leave the matching data out.
type Options struct {
	// Config returns the config in use; read on every request, so a reload
	// changes the admin key and the backends shown at once.
	Config func() *config.Config
	// Backends holds the live state of each backend.
	Backends *upstream.Registry
	// Metrics serves /metrics and gives the recent and per-key figures.
	Metrics *metrics.Gateway
	// IsClientKey reports whether a presented secret is a client key, so
	// that one is refused with a clear message. Nil: no such check.
	IsClientKey func(presented string) bool
	// Routes are more endpoints behind the admin key, by http.ServeMux
	// pattern under /admin/ (e.g. "GET /admin/usage"). Nil: none.
	Routes map[string]http.Handler
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Admin is the admin endpoints' handler. Safe for concurrent use.
type Admin struct {
	opts Options
	now  func() time.Time
	page statusPage
	mux  *http.ServeMux
	prom http.Handler // nil without Metrics
}

// New returns the admin handler.
func New(opts Options) *Admin {
	a := &Admin{opts: opts, now: opts.Now, page: buildPage()}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.Metrics != nil {
		a.prom = opts.Metrics.Handler()
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /status", a.serveStatus)
	m.HandleFunc("GET /status/{$}", a.serveStatus)
	m.Handle("GET /admin/backends", a.guard(http.HandlerFunc(a.serveBackends)))
	m.Handle("GET /admin/keys", a.guard(http.HandlerFunc(a.serveKeys)))
	m.Handle("/debug/pprof/", a.guard(http.HandlerFunc(pprof.Index)))
	m.Handle("/debug/pprof/cmdline", a.guard(http.HandlerFunc(pprof.Cmdline)))
	m.Handle("/debug/pprof/profile", a.guard(http.HandlerFunc(pprof.Profile)))
	m.Handle("/debug/pprof/symbol", a.guard(http.HandlerFunc(pprof.Symbol)))
	m.Handle("/debug/pprof/trace", a.guard(http.HandlerFunc(pprof.Trace)))
	m.HandleFunc("GET /metrics", a.serveMetrics)
	for pattern, h := range opts.Routes {
		m.Handle(pattern, a.guard(h))
	}
	a.mux = m
	return a
}

// Owns reports whether path is one of the admin endpoints, for the
// gateway's top-level routing.
func Owns(path string) bool {
	switch path {
	case "/status", "/status/", "/metrics":
		return true
	}
	return strings.HasPrefix(path, "/admin/") || strings.HasPrefix(path, "/debug/pprof/")
}

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if a.opts.Config().Admin.Key == "" && !(r.URL.Path == "/metrics" && a.opts.Config().Admin.MetricsOpen()) {
		writeError(w, http.StatusNotFound, "not_found", "Not found: the admin endpoints are disabled (no admin.key configured).")
		return
	}
	_, pattern := a.mux.Handler(r)
	if pattern == "" {
		writeError(w, http.StatusNotFound, "not_found", "Not found.")
		return
	}
	a.mux.ServeHTTP(w, r)
}

// guard admits requests that carry the admin key.
func (a *Admin) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authorized(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// authorized checks the admin key and answers 401 when it is missing or
// wrong. A client key gets the very same answer as a wrong key, so the
// admin endpoints cannot be used to learn whether a guess is a client key.
func (a *Admin) authorized(w http.ResponseWriter, r *http.Request) bool {
	if a.check(r) {
		return true
	}
	writeError(w, http.StatusUnauthorized, "401", "Unauthorized: the admin key is required (api-key or Authorization: Bearer); client keys cannot use the admin endpoints.")
	return false
}

// check compares the presented secret with the admin key in constant time
// (SHA-256 digests, so the length of the key leaks nothing either). A client
// key is never granted, even one equal to the admin key (validate refuses
// such a config; this holds if one is ever loaded).
func (a *Admin) check(r *http.Request) bool {
	want := a.opts.Config().Admin.Key.Reveal()
	got := presented(r)
	if want == "" || got == "" {
		return false
	}
	gd, wd := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	match := subtle.ConstantTimeCompare(gd[:], wd[:]) == 1
	return match && (a.opts.IsClientKey == nil || !a.opts.IsClientKey(got))
}

// presented returns the secret a request carries: api-key, Bearer, or the
// password of Basic auth (what a browser or curl -u sends).
func presented(r *http.Request) string {
	if k := auth.FromRequest(r.Header); k != "" {
		return k
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw
	}
	return ""
}

func (a *Admin) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if a.prom == nil {
		writeError(w, http.StatusNotFound, "not_found", "Not found: metrics are off.")
		return
	}
	if !a.opts.Config().Admin.MetricsOpen() && !a.authorized(w, r) {
		return
	}
	a.prom.ServeHTTP(w, r)
}

// writeError answers in the OpenAI error shape, as the gateway does everywhere.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	typ := "invalid_request_error"
	if status == http.StatusUnauthorized {
		typ = "authentication_error"
	}
	writeJSON(w, status, openai.ErrorBody{Error: openai.Error{Message: msg, Type: typ, Code: code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
