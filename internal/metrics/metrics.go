// Package metrics turns what the gateway observes into Prometheus metrics
// and into the recent per-backend and per-key figures the status page shows.
// It is the only package that imports a Prometheus library.
//
// A Gateway owns its own registry: nothing is registered globally and
// nothing happens at import time.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/upstream"
)

// Label values used when the real value is absent or unbounded.
const (
	// None stands for an absent value: no model named, no key presented,
	// no backend answered.
	None = "none"
	// Other stands for a value outside the bounded set (an unknown model,
	// a backend no longer configured).
	Other = "other"
)

// maxDynamicModels bounds the model names admitted beyond the configured
// ones (names served by a backend that serves every name).
const maxDynamicModels = 100

// Options configures New.
type Options struct {
	// Backends is read at every scrape for the backend-state gauges. Nil: none.
	Backends *upstream.Registry
	// Now is the clock of the recent windows. Nil means time.Now.
	Now func() time.Time
	// Keys is read at every scrape for llmgate_key_info: the keys of the
	// config in use. Nil: no such metric.
	Keys func() []KeyInfo
	// Store is read at every scrape for llmgate_store_up. Nil: no such metric.
	Store func() StoreState
}

// Gateway records requests, upstream attempts, tokens, retries and circuit
// transitions. It implements proxy.Events. Safe for concurrent use.
type Gateway struct {
	reg *prometheus.Registry
	now func() time.Time

	requests    *prometheus.CounterVec   // route, model, key, backend, status
	duration    *prometheus.HistogramVec // route, model, stream
	ttfb        *prometheus.HistogramVec // route, model, stream
	tokens      *prometheus.CounterVec   // key, model, backend, type
	attempts    *prometheus.CounterVec   // backend, outcome
	retries     *prometheus.CounterVec   // backend, reason
	upLatency   *prometheus.HistogramVec // backend
	transitions *prometheus.CounterVec   // backend, to
	reloads     *prometheus.CounterVec   // result
	reloadedAt  prometheus.Gauge

	labels labels

	mu       sync.RWMutex // guards reqCache, attCache, backends, keys
	reqCache map[reqKey]*reqChildren
	attCache map[attKey]*attChildren
	backends map[string]*recent
	keys     map[keyModel]*keyCounters
	// current holds the backends of the config in use (Configure): the
	// live split covers them only, not backends a reload removed.
	current atomic.Pointer[map[string]bool]
}

// reqKey is the label tuple of one request, already bounded.
type reqKey struct {
	route, model, key, backend string
	status                     int
	stream                     bool
}

// reqChildren are the series one request tuple updates.
type reqChildren struct {
	requests         prometheus.Counter
	duration, ttfb   prometheus.Observer
	prompt, complete prometheus.Counter
	total            prometheus.Counter // prompt + completion
	usage            *keyCounters
}

type attKey struct{ backend, outcome string }

type attChildren struct {
	attempts prometheus.Counter
	latency  prometheus.Observer
	recent   *recent
}

type keyModel struct{ key, model string }

// New returns a Gateway with its own registry, holding the Go runtime and
// process collectors besides the gateway's own metrics.
func New(opts Options) *Gateway {
	g := &Gateway{
		reg:      prometheus.NewRegistry(),
		now:      opts.Now,
		reqCache: map[reqKey]*reqChildren{},
		attCache: map[attKey]*attChildren{},
		backends: map[string]*recent{},
		keys:     map[keyModel]*keyCounters{},
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.labels.init()
	g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_requests_total",
		Help: "Client requests answered, by operation, model, key name, the backend that answered last and HTTP status.",
	}, []string{"route", "model", "key", "backend", "status"})
	g.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llmgate_request_duration_seconds",
		Help:    "Whole client requests, from arrival to the last byte sent, retries and waits included.",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40, 80, 160},
	}, []string{"route", "model", "stream"})
	g.ttfb = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llmgate_time_to_first_byte_seconds",
		Help:    "Time from a client request's arrival to the first byte of the answer sent to it.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "model", "stream"})
	g.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_tokens_total",
		Help: "Tokens reported by upstreams, by key name, model, backend and type (prompt, completion, or total = prompt + completion; summing over type counts twice).",
	}, []string{"key", "model", "backend", "type"})
	g.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_upstream_attempts_total",
		Help: "Upstream attempts by backend and outcome (ok, client_error, 429, 5xx, auth, timeout, connection, error_event, stream_cut, redirect, canceled, deadline).",
	}, []string{"backend", "outcome"})
	g.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_upstream_retries_total",
		Help: "Retries, by the backend whose failed attempt caused them and the reason (429, 5xx, timeout, connection, error_event, auth, other).",
	}, []string{"backend", "reason"})
	g.upLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llmgate_upstream_latency_seconds",
		Help:    "Upstream attempts, from sending the request to the response headers (or the failure).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"backend"})
	g.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_circuit_transitions_total",
		Help: "Circuit breaker state changes by backend and new state (open, half_open, closed).",
	}, []string{"backend", "to"})
	g.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_config_reloads_total",
		Help: "Config reloads by result (ok, rejected).",
	}, []string{"result"})
	g.reloadedAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmgate_config_last_reload_success_timestamp_seconds",
		Help: "When the config in use was loaded (Unix seconds).",
	})
	g.reloadedAt.SetToCurrentTime()
	g.reloads.WithLabelValues("ok")
	g.reloads.WithLabelValues("rejected")
	g.reg.MustRegister(g.requests, g.duration, g.ttfb, g.tokens, g.attempts, g.retries,
		g.upLatency, g.transitions, g.reloads, g.reloadedAt,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Backends != nil {
		g.reg.MustRegister(&stateCollector{reg: opts.Backends, now: g.now})
	}
	if opts.Keys != nil || opts.Store != nil {
		g.reg.MustRegister(&infoCollector{keys: opts.Keys, store: opts.Store})
	}
	return g
}

// Registry returns the Gateway's registry, for tests and extra collectors.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Handler serves the registry in the Prometheus text format (or protobuf
// or OpenMetrics when the scraper asks for them).
func (g *Gateway) Handler() http.Handler {
	return promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Configure sets the bounded label sets from the config in use: the model
// names that pass through as they are, and the backends. Called on start
// and on every reload.
func (g *Gateway) Configure(models, backends []string) {
	g.labels.configure(models, backends)
	current := make(map[string]bool, len(backends))
	for _, b := range backends {
		current[b] = true
	}
	g.current.Store(&current)
}

// Reloaded counts a config reload: ok false means it was rejected.
func (g *Gateway) Reloaded(ok bool) {
	if !ok {
		g.reloads.WithLabelValues("rejected").Inc()
		return
	}
	g.reloads.WithLabelValues("ok").Inc()
	g.reloadedAt.SetToCurrentTime()
}

// Transition implements proxy.Events.
func (g *Gateway) Transition(t upstream.Transition) {
	g.transitions.WithLabelValues(g.labels.backend(t.Backend), t.To.String()).Inc()
}

// Attempt implements proxy.Events.
func (g *Gateway) Attempt(a *proxy.AttemptInfo) {
	g.labels.admitModel(a.Model)
	c := g.attempt(attKey{backend: g.labels.backend(a.Backend), outcome: outcomeLabel(a.Outcome)})
	c.attempts.Inc()
	if a.Outcome != proxy.OutcomeCanceled && a.Outcome != proxy.OutcomeDeadline && a.Latency > 0 {
		c.latency.Observe(a.Latency.Seconds())
	}
	c.recent.add(g.now(), a.Outcome, a.Latency)
	if a.PrevBackend != "" {
		g.retries.WithLabelValues(g.labels.backend(a.PrevBackend), retryReason(a.PrevOutcome)).Inc()
	}
}

func (g *Gateway) attempt(k attKey) *attChildren {
	return cached(&g.mu, g.attCache, k, func() *attChildren {
		r := g.backends[k.backend]
		if r == nil {
			r = &recent{}
			g.backends[k.backend] = r
		}
		return &attChildren{
			attempts: g.attempts.WithLabelValues(k.backend, k.outcome),
			latency:  g.upLatency.WithLabelValues(k.backend),
			recent:   r,
		}
	})
}

// cached returns m[k], building it with build (under mu's write lock) the
// first time: the hot path takes only the read lock.
func cached[K comparable, V any](mu *sync.RWMutex, m map[K]V, k K, build func() V) V {
	mu.RLock()
	v, ok := m[k]
	mu.RUnlock()
	if ok {
		return v
	}
	mu.Lock()
	defer mu.Unlock()
	if v, ok := m[k]; ok {
		return v
	}
	v = build()
	m[k] = v
	return v
}

// Request implements proxy.Events.
func (g *Gateway) Request(r *proxy.RequestInfo) {
	k := reqKey{
		route:   orNone(r.Route),
		model:   g.labels.model(r.Model),
		key:     orNone(r.Key),
		backend: g.labels.backend(r.Backend),
		status:  r.Status,
		stream:  r.Stream,
	}
	c := g.request(k)
	c.requests.Inc()
	c.duration.Observe(r.Duration.Seconds())
	if r.TTFB > 0 {
		c.ttfb.Observe(r.TTFB.Seconds())
	}
	if r.PromptTokens > 0 {
		c.prompt.Add(float64(r.PromptTokens))
	}
	if r.CompletionTokens > 0 {
		c.complete.Add(float64(r.CompletionTokens))
	}
	if r.PromptTokens > 0 || r.CompletionTokens > 0 {
		c.total.Add(float64(max(r.PromptTokens, 0) + max(r.CompletionTokens, 0)))
	}
	if c.usage != nil {
		c.usage.add(r.Status, r.PromptTokens, r.CompletionTokens)
	}
}

func (g *Gateway) request(k reqKey) *reqChildren {
	return cached(&g.mu, g.reqCache, k, func() *reqChildren {
		stream := strconv.FormatBool(k.stream)
		c := &reqChildren{
			requests: g.requests.WithLabelValues(k.route, k.model, k.key, k.backend, strconv.Itoa(k.status)),
			duration: g.duration.WithLabelValues(k.route, k.model, stream),
			ttfb:     g.ttfb.WithLabelValues(k.route, k.model, stream),
			prompt:   g.tokens.WithLabelValues(k.key, k.model, k.backend, "prompt"),
			complete: g.tokens.WithLabelValues(k.key, k.model, k.backend, "completion"),
			total:    g.tokens.WithLabelValues(k.key, k.model, k.backend, "total"),
		}
		if k.key != None {
			km := keyModel{k.key, k.model}
			u := g.keys[km]
			if u == nil {
				u = &keyCounters{}
				g.keys[km] = u
			}
			c.usage = u
		}
		return c
	})
}

func orNone(s string) string {
	if s == "" {
		return None
	}
	return s
}

// outcomeLabel keeps the attempt outcome within the proxy's closed vocabulary.
func outcomeLabel(o string) string {
	switch o {
	case proxy.OutcomeOK, proxy.OutcomeClientError, proxy.OutcomeThrottled, proxy.OutcomeServerError,
		proxy.OutcomeAuth, proxy.OutcomeTimeout, proxy.OutcomeConnection, proxy.OutcomeErrorEvent,
		proxy.OutcomeStreamCut, proxy.OutcomeRedirect, proxy.OutcomeBadResponse, proxy.OutcomeCanceled, proxy.OutcomeDeadline:
		return o
	}
	return Other
}

// retryReason maps one trail step's outcome ("429(ra=3s)", "503",
// "timeout", "conn_error", "200+error", "stream_error") to a reason label.
func retryReason(outcome string) string {
	switch outcome {
	case proxy.OutcomeThrottled:
		return "429"
	case proxy.OutcomeServerError:
		return "5xx"
	case proxy.OutcomeTimeout:
		return "timeout"
	case proxy.OutcomeConnection:
		return "connection"
	case proxy.OutcomeErrorEvent, proxy.OutcomeStreamCut:
		return "error_event"
	case proxy.OutcomeAuth:
		return "auth"
	}
	return Other
}
