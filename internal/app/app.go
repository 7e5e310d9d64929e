package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/upstream"
)

// App is a running gateway: its handler, its backends' state and its server.
type App struct {
	log       *slog.Logger
	registry  *upstream.Registry
	proxy     *proxy.Handler
	transport *http.Transport
	cfg       atomic.Pointer[config.Config]
	draining  atomic.Bool
}

// Options configures New.
type Options struct {
	// Logger receives the access log and lifecycle events. Nil discards.
	Logger *slog.Logger
	// Transport overrides the upstream transport (tests). Nil builds one from the config.
	Transport http.RoundTripper
}

// New builds a gateway from a loaded, valid config.
func New(cfg *config.Config, opts Options) (*App, error) {
	a := &App{log: opts.Logger, registry: upstream.NewRegistry()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	snap, err := snapshot(cfg, a.registry)
	if err != nil {
		return nil, err
	}
	rt := opts.Transport
	if rt == nil {
		a.transport = newTransport(cfg.Timeouts)
		rt = a.transport
	}
	a.proxy = proxy.New(proxy.Options{Transport: rt, Logger: a.log}, snap)
	a.cfg.Store(cfg)
	return a, nil
}

// Handler serves /healthz, /readyz and the API.
func (a *App) Handler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

func (a *App) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		writePlain(w, http.StatusOK, "ok\n")
	case "/readyz":
		if a.draining.Load() {
			writePlain(w, http.StatusServiceUnavailable, "draining\n")
			return
		}
		writePlain(w, http.StatusOK, "ready\n")
	default:
		a.proxy.ServeHTTP(w, r)
	}
}

func writePlain(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s))
}

// Server returns an http.Server for the gateway with the config's timeouts.
func (a *App) Server() *http.Server {
	cfg := a.cfg.Load()
	return &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx is cancelled, then drains in-flight requests
// (streams included) for up to the configured grace period.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	ln = &onceCloseListener{Listener: ln}
	srv := a.Server()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("listening", slog.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Refuse new connections first, then report not ready, then drain.
	_ = ln.Close()
	a.draining.Store(true)
	grace := a.cfg.Load().Timeouts.ShutdownGrace.D()
	a.log.Info("draining", slog.Duration("grace", grace))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("shutdown: %w", err)
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && !errors.Is(e, net.ErrClosed) && err == nil {
		err = e
	}
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	a.log.Info("stopped")
	return err
}

// Run listens on the configured address and serves until ctx is cancelled.
func (a *App) Run(ctx context.Context) error {
	addr := a.cfg.Load().Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return a.Serve(ctx, ln)
}

// Reload validates nothing itself: it swaps in an already valid config.
func (a *App) Reload(cfg *config.Config) error {
	snap, err := snapshot(cfg, a.registry)
	if err != nil {
		return err
	}
	a.proxy.Swap(snap)
	a.cfg.Store(cfg)
	names := make(map[string]bool, len(cfg.Backends))
	for _, b := range cfg.Backends {
		names[b.Name] = true
	}
	a.registry.Retain(names)
	return nil
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
