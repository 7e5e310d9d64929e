package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/internal/admin"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/h1"
	"github.com/llmgate/llmgate/internal/metrics"
	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/tlsmux"
	"github.com/llmgate/llmgate/internal/tracing"
	"github.com/llmgate/llmgate/internal/upstream"
)

// App is a running gateway: its handler, its backends' state, its metrics,
// admin endpoints and tracer, and its server. Safe for concurrent use.
type App struct {
	log       *slog.Logger
	registry  *upstream.Registry
	proxy     *proxy.Handler
	transport *h1.Transport // nil when Options.Transport was given
	cfg       atomic.Pointer[config.Config]
	draining  atomic.Bool

	metrics *metrics.Gateway
	events  proxy.Events // the metrics, and Options.Events if any
	admin   *admin.Admin
	shared  *shared         // the state store: key limits, usage, cool-downs shared by replicas
	api     http.Handler    // the proxy, wrapped in the tracer's middleware when tracing is on
	tracer  *tracing.Tracer // nil: tracing off
	// ownTracer: the tracer was built here from the config, so Serve shuts it down.
	ownTracer bool
	// cert is the listener's certificate; nil when the gateway serves plain HTTP.
	cert atomic.Pointer[tls.Certificate]

	// path is the config file; "" when the App was built from a value only.
	path       string
	watchEvery time.Duration
	reloadMu   sync.Mutex   // serialises reloads; guards seen
	seen       fileStamp    // the config file content last loaded or rejected
	certSeen   [2]fileStamp // the TLS certificate and key files as last looked at (size and time)
}

// Options configures New.
type Options struct {
	// Logger receives the access log and lifecycle events. Nil discards.
	Logger *slog.Logger
	// Transport overrides the upstream transport (tests). Nil builds one from the config.
	Transport http.RoundTripper
	// ConfigPath is the file the config was loaded from: ReloadFile reads it
	// again, and Serve watches it and reloads on change. Empty: neither.
	ConfigPath string
	// WatchInterval is how often Serve looks at ConfigPath for a change.
	// Zero: 1s. Negative: no watching (reload on SIGHUP only).
	WatchInterval time.Duration
	// Tracer traces requests. Nil: one is built from the config's tracing
	// section when it names an endpoint; otherwise tracing is off.
	Tracer *tracing.Tracer
	// Events receives the proxy's events besides the metrics. Nil: none.
	Events proxy.Events
	// Version is reported in traces (service.version). Empty: none.
	Version string
	// AccessLog receives the access log as JSON lines (fast path, e.g. a
	// LineWriter). Nil: the access log goes to Logger.
	AccessLog io.Writer
}

// New builds a gateway from a loaded, valid config.
func New(cfg *config.Config, opts Options) (*App, error) {
	a := &App{log: opts.Logger, registry: upstream.NewRegistry(), path: opts.ConfigPath, watchEvery: opts.WatchInterval}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.watchEvery == 0 {
		a.watchEvery = time.Second
	}
	if a.path != "" {
		a.seen, _ = stampFile(a.path)
	}
	if cfg.TLS.CertFile != "" {
		cert, err := loadCert(cfg.TLS)
		if err != nil {
			return nil, err
		}
		a.cert.Store(cert)
	}
	snap, err := snapshot(cfg, a.registry)
	if err != nil {
		return nil, err
	}
	a.tracer = opts.Tracer
	if a.tracer == nil && cfg.Tracing.Endpoint != "" {
		a.tracer, err = tracing.New(tracing.Options{Endpoint: cfg.Tracing.Endpoint, ServiceName: cfg.Tracing.ServiceName,
			SampleRatio: &cfg.Tracing.SampleRatio, Version: opts.Version, Logger: a.log})
		if err != nil {
			return nil, err
		}
		a.ownTracer = true
	}
	a.shared, err = newShared(cfg.Store, a.registry, a.log)
	if err != nil {
		if a.ownTracer {
			_ = a.tracer.Shutdown(context.Background())
		}
		return nil, err
	}
	a.metrics = metrics.New(metrics.Options{Backends: a.registry, Keys: a.keyInfo, Store: a.shared.metricsState})
	rt := opts.Transport
	if rt == nil {
		a.transport = newTransport(cfg.Timeouts)
		rt = a.transport
	}
	var attemptCtx func(context.Context, string) context.Context
	if a.tracer != nil {
		rt = a.tracer.Transport(rt)
		attemptCtx = a.tracer.WithBackend
	}
	var ev proxy.Events = a.metrics
	if opts.Events != nil {
		ev = fanout{a.metrics, opts.Events}
	}
	a.events = ev
	a.proxy = proxy.New(proxy.Options{Transport: rt, Logger: a.log, Events: ev, AccessLog: opts.AccessLog,
		Store: a.shared.store, Usage: a.shared.usage, OnThrottle: a.shared.onThrottle, OnCircuitOpen: a.shared.onCircuitOpen,
		OnStoreError: func(err error) { a.shared.failed("admit", err) }, AttemptContext: attemptCtx}, snap)
	a.shared.transition = func(tr upstream.Transition) { a.proxy.CircuitChanged(tr, "") }
	a.api = a.proxy
	if a.tracer != nil {
		a.api = a.tracer.Middleware(a.proxy)
	}
	a.admin = admin.New(admin.Options{
		Config:      a.Config,
		Backends:    a.registry,
		Metrics:     a.metrics,
		IsClientKey: a.isClientKey,
		Routes:      map[string]http.Handler{"GET /admin/usage": http.HandlerFunc(a.shared.serveUsage)},
	})
	a.cfg.Store(cfg)
	a.configure(cfg)
	a.logWarnings(cfg)
	return a, nil
}

// keyInfo lists the keys of the config in use for llmgate_key_info.
func (a *App) keyInfo() []metrics.KeyInfo {
	cfg := a.cfg.Load()
	if cfg == nil {
		return nil
	}
	out := make([]metrics.KeyInfo, 0, len(cfg.Keys))
	for _, k := range cfg.Keys {
		out = append(out, metrics.KeyInfo{Name: k.Name, Team: k.Team, Owner: k.Owner})
	}
	return out
}

// Handler serves /healthz, /readyz, the admin endpoints (/status,
// /admin/*, /metrics, /debug/pprof/) and the API. /healthz is 200 while
// the process runs; /readyz is 503 while draining. While the state store
// is unreachable both bodies say so and name store.on_failure, and /readyz
// is 503 under on_failure: closed (see shared.health).
func (a *App) Handler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

func (a *App) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/healthz":
		status, body := a.shared.health(false)
		writePlain(w, status, body)
	case p == "/readyz":
		if a.draining.Load() {
			writePlain(w, http.StatusServiceUnavailable, "draining\n")
			return
		}
		status, body := a.shared.health(true)
		writePlain(w, status, body)
	case admin.Owns(p):
		a.admin.ServeHTTP(w, r)
	default:
		a.api.ServeHTTP(w, r)
	}
}

func writePlain(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s))
}

// Server returns an http.Server for the gateway with the config's
// timeouts and, when TLS is configured, the certificate in use (read
// again on every reload). Serve uses it for the TLS connections that
// chose HTTP/2; HTTP/1.1 goes to PlainServer's server, over TLS or not.
func (a *App) Server() *http.Server {
	cfg := a.cfg.Load()
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    maxHeaderBytes(cfg),
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.cert.Load() != nil {
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: tlsmux.Protocols, // and so srv.Serve takes HTTP/2 connections
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return a.cert.Load(), nil
			},
		}
	}
	return srv
}

// PlainServer returns the server for plain-HTTP listeners: h1's HTTP/1.1
// server, with the same timeouts and bounds as Server (see package h1 for
// what it saves over net/http's).
func (a *App) PlainServer() *h1.Server {
	cfg := a.cfg.Load()
	return &h1.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    maxHeaderBytes(cfg),
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// maxHeaderBytes is the servers' hard bound on a request head: the proxy
// answers oversized headers itself (JSON 431) up to it.
func maxHeaderBytes(cfg *config.Config) int { return max(4*cfg.MaxHeaderBytes, 1<<20) }

// server is what Serve needs of h1.Server and tlsServers to stop them.
type server interface {
	Shutdown(context.Context) error
	Close() error
}

// tlsServers serve a TLS listener: tlsmux splits its connections between
// net/http's server for those that chose HTTP/2 and h1's for HTTP/1.1,
// which answers every bound (header size and time) in JSON, as on a plain
// listener.
type tlsServers struct {
	mux    *tlsmux.Mux
	h2     *http.Server
	h1     *h1.Server
	cancel context.CancelCauseFunc // cancels what still runs: both servers' requests
}

func (a *App) tlsServers(ln net.Listener) *tlsServers {
	hs := a.Server()
	base, cancelBase := context.WithCancelCause(context.Background())
	hs.BaseContext = func(net.Listener) context.Context { return base }
	ps := a.PlainServer()
	onError := func(remote net.Addr, err error) {
		a.log.Warn("tls handshake failed", slog.String("remote", remote.String()), slog.Any("err", err))
	}
	mux := tlsmux.New(ln, tlsmux.Options{Config: hs.TLSConfig, HandshakeTimeout: a.cfg.Load().Timeouts.ReadHeader.D(), OnError: onError,
		PlainHTTPAnswer: h1.ErrorResponse(http.StatusBadRequest, "http_to_https", "The client sent an HTTP request to an HTTPS server.")})
	s := &tlsServers{mux: mux, h2: hs, h1: ps}
	s.cancel = func(cause error) {
		cancelBase(cause)
		if cause != nil {
			ps.CancelRequests(cause)
		}
	}
	return s
}

// serve runs both servers until they stop; it returns the first error
// that is not their being stopped.
func (s *tlsServers) serve() error {
	errs := make(chan error, 2)
	go func() { errs <- s.h2.Serve(s.mux.H2()) }()
	go func() { errs <- s.h1.Serve(s.mux.H1()) }()
	var first error
	for range 2 {
		err := <-errs
		if first == nil || errors.Is(first, http.ErrServerClosed) || errors.Is(first, net.ErrClosed) {
			first = err
		}
		_ = s.mux.Close() // one stopped: the other's listener closes too
	}
	return first
}

// Shutdown drains both servers at once.
func (s *tlsServers) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var err2 error
	wg.Go(func() { err2 = s.h2.Shutdown(ctx) })
	err1 := s.h1.Shutdown(ctx)
	wg.Wait()
	_ = s.mux.Close()
	return cmp.Or(err1, err2)
}

// Close closes both servers and every connection.
func (s *tlsServers) Close() error {
	err1, err2 := s.h2.Close(), s.h1.Close()
	_ = s.mux.Close()
	return cmp.Or(err1, err2)
}

// Serve serves on ln until ctx is cancelled, then drains in-flight requests
// (streams included) for up to the configured grace period. While it runs
// it watches the config file (Options.ConfigPath) and reloads on change.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	ln = &onceCloseListener{Listener: ln}
	var srv server
	var cancelRequests func(cause error) // what is still running when the grace period ends
	errc := make(chan error, 1)
	tlsOn := a.cert.Load() != nil
	if tlsOn {
		ts := a.tlsServers(ln)
		defer ts.cancel(nil)
		srv, cancelRequests = ts, ts.cancel
		go func() { errc <- ts.serve() }()
	} else {
		ps := a.PlainServer()
		srv, cancelRequests = ps, ps.CancelRequests
		go func() { errc <- ps.Serve(ln) }()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.path != "" && a.watchEvery > 0 {
		wg.Go(func() { a.Watch(wctx) })
	}
	sctx, stopShared := context.WithCancel(context.WithoutCancel(ctx))
	var sharedWG sync.WaitGroup
	sharedWG.Go(func() { a.shared.run(sctx) })
	sharedWG.Go(func() { a.runHealthChecks(wctx, a.healthClient()) })
	defer func() {
		// After the drain: the last requests' reconciliations finish, their
		// usage is flushed, then the store closed.
		a.proxy.Wait()
		stopShared()
		sharedWG.Wait()
		a.shared.close()
	}()
	defer func() {
		stopWatch()
		wg.Wait()
	}()
	a.log.Info("listening", slog.String("addr", ln.Addr().String()), slog.Bool("tls", tlsOn))
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Report not ready; after timeouts.drain_delay (load balancers stop
	// sending meanwhile) refuse new connections; then drain.
	a.draining.Store(true)
	if d := a.cfg.Load().Timeouts.DrainDelay.D(); d > 0 {
		a.log.Info("draining soon: /readyz answers 503, new connections are still taken", slog.Duration("drain_delay", d))
		time.Sleep(d)
	}
	_ = ln.Close()
	grace := a.cfg.Load().Timeouts.ShutdownGrace.D()
	a.log.Info("draining", slog.Duration("grace", grace))
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(dctx)
	if err != nil {
		// The grace period is over. What still runs is cancelled as the
		// gateway's own doing: a request not answered yet gets a 503 to
		// send again, a stream a last error event. They have a moment to
		// say so, then every connection is closed.
		a.log.Warn("grace period over: cancelling the requests still running", slog.Duration("grace", grace))
		cancelRequests(proxy.ErrShutdown)
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), finalWord)
		if srv.Shutdown(fctx) != nil {
			_ = srv.Close()
		}
		fcancel()
		err = nil // a stop that was asked for: the line above says what it cut
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && !errors.Is(e, net.ErrClosed) && err == nil {
		err = e
	}
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	if a.ownTracer {
		tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer tcancel()
		if terr := a.tracer.Shutdown(tctx); terr != nil {
			a.log.Warn("tracing shutdown", slog.Any("err", terr))
		}
	}
	a.log.Info("stopped")
	return err
}

// finalWord is how long requests cancelled at the end of the grace period
// have to answer (a 503, a stream's last event) before their connections
// are closed.
const finalWord = time.Second

// Run listens on the configured address and serves until ctx is cancelled.
func (a *App) Run(ctx context.Context) error {
	addr := a.cfg.Load().Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return a.Serve(ctx, ln)
}

// Config returns the config in use.
func (a *App) Config() *config.Config { return a.cfg.Load() }

// onceCloseListener closes its listener once, so that closing it ahead of
// Shutdown does not turn into an error from Shutdown.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// healthClient sends active health checks; it never follows redirects.
func (a *App) healthClient() *http.Client {
	var rt http.RoundTripper = http.DefaultTransport
	if a.transport != nil {
		rt = a.transport
	}
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
