package app

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/llmgate/llmgate/internal/config"
)

// Reload swaps in cfg, which must be valid (as config.Load returns it).
// The swap is atomic: a request uses the config it started with to its
// end, streams included; the next one sees the new config. Backend state
// (cool-downs, circuits, latency, counters) carries over for every backend
// still configured. Settings that only a restart can change (the listen
// address, turning TLS on or off, tracing, store, server and transport
// timeouts) are logged; the values in effect stay until a restart. The
// certificate files are read again. On error nothing changes.
func (a *App) Reload(cfg *config.Config) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.apply(cfg, "", "call")
}

// ReloadFile reads, validates and swaps in the config file at path, as on
// SIGHUP; path is normally Options.ConfigPath ("" means that one). A file
// that does not load or validate is rejected with one log line listing
// every problem, and the config in use keeps serving.
func (a *App) ReloadFile(path string) error {
	if path == "" {
		path = a.path
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.reloadFile(path, "signal")
}

// Watch polls the config file every Options.WatchInterval and reloads it
// when its content changes, until ctx is done. Serve runs it.
func (a *App) Watch(ctx context.Context) {
	if a.path == "" {
		return
	}
	t := time.NewTicker(max(a.watchEvery, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.reloadIfChanged()
		a.reloadCertIfChanged()
	}
}

// fileStamp identifies a version of the config file.
type fileStamp struct {
	size    int64
	modTime time.Time
	hash    [sha256.Size]byte
}

func stampFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), hash: sha256.Sum256(data)}, nil
}

// reloadIfChanged reloads the file if its size, time or content changed
// since it was last loaded or rejected. A file missing for a moment (an
// editor or a Kubernetes ConfigMap swapping it) is looked at again next time.
func (a *App) reloadIfChanged() {
	fi, err := os.Stat(a.path)
	if err != nil {
		return
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if fi.Size() == a.seen.size && fi.ModTime().Equal(a.seen.modTime) {
		return
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		return
	}
	if sha256.Sum256(data) == a.seen.hash {
		a.seen.size, a.seen.modTime = fi.Size(), fi.ModTime()
		return
	}
	_ = a.reloadFile(a.path, "file change")
}

// reloadCertIfChanged loads the listener's certificate and key again when
// either file changed (cert-manager and certbot renew the files, not the
// config). A pair that does not load (one file written, the other not yet)
// is logged and the certificate in use stays; the next change is tried again.
func (a *App) reloadCertIfChanged() {
	if a.cert.Load() == nil {
		return
	}
	t := a.cfg.Load().TLS
	if t.CertFile == "" {
		return
	}
	var now [2]fileStamp
	for i, f := range [2]string{t.CertFile, t.KeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return // swapped out for a moment: look again next time
		}
		now[i] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if now == a.certSeen {
		return
	}
	first := a.certSeen == [2]fileStamp{}
	a.certSeen = now
	if first {
		return // the files as they were at start (or at the last reload)
	}
	c, err := loadCert(t)
	if err != nil {
		a.log.Warn("tls certificate files changed but do not load; keeping the certificate in use", slog.Any("err", err))
		return
	}
	a.cert.Store(c)
	a.log.Info("tls certificate reloaded", slog.String("cert_file", t.CertFile), slog.String("trigger", "file change"))
}

// reloadFile loads the file at path and applies it. reloadMu must be held.
func (a *App) reloadFile(path, trigger string) error {
	if path == "" {
		return errors.New("reload: no config file")
	}
	fi, err := os.Stat(path)
	var data []byte
	if err == nil {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		a.rejected(path, trigger, []string{err.Error()})
		return fmt.Errorf("reload: %w", err)
	}
	if path == a.path {
		a.seen = fileStamp{size: fi.Size(), modTime: fi.ModTime(), hash: sha256.Sum256(data)}
	}
	cfg, err := config.Parse(path, data, os.LookupEnv, Check)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			problems := make([]string, 0, len(ce.Problems))
			for _, p := range ce.Problems {
				problems = append(problems, p.String())
			}
			a.rejected(path, trigger, problems)
		} else {
			a.rejected(path, trigger, []string{err.Error()})
		}
		return fmt.Errorf("reload: %w", err)
	}
	return a.apply(cfg, path, trigger)
}

// rejected logs and counts a reload that changed nothing.
func (a *App) rejected(file, trigger string, problems []string) {
	a.metrics.Reloaded(false)
	a.log.Error("config reload rejected", slog.String("file", file), slog.String("trigger", trigger),
		slog.Any("problems", problems), slog.String("keeping", "the config in use"))
}

// apply swaps in cfg, read from file ("" if none). reloadMu must be held.
func (a *App) apply(cfg *config.Config, file, trigger string) error {
	old := a.cfg.Load()
	// What only a restart changes keeps its running value in the config
	// swapped in, so that every reader (the proxy's store settings,
	// /readyz, the metrics) and the next reload's comparison see what is
	// in use.
	fixed := keepRestartOnly(old, cfg)
	var cert *tls.Certificate
	if a.cert.Load() != nil && cfg.TLS.CertFile != "" {
		c, err := loadCert(cfg.TLS)
		if err != nil {
			a.rejected(file, trigger, []string{err.Error()})
			return fmt.Errorf("reload: %w", err)
		}
		cert = c
	}
	snap, err := snapshot(cfg, a.registry)
	if err != nil {
		a.registry.Retain(backendNames(old)) // drop states made for the rejected config
		a.rejected(file, trigger, []string{err.Error()})
		return fmt.Errorf("reload: %w", err)
	}
	a.proxy.Swap(snap)
	a.cfg.Store(cfg)
	if cert != nil {
		a.cert.Store(cert)
	}
	a.configure(cfg)
	a.registry.Retain(backendNames(cfg))
	a.metrics.Reloaded(true)

	oldNames, newNames := backendNames(old), backendNames(cfg)
	added, removed := []string{}, []string{}
	for n := range newNames {
		if !oldNames[n] {
			added = append(added, n)
		}
	}
	for n := range oldNames {
		if !newNames[n] {
			removed = append(removed, n)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	a.log.Info("config reloaded", slog.String("file", file), slog.String("trigger", trigger),
		slog.Int("backends", len(cfg.Backends)), slog.Int("keys", len(cfg.Keys)),
		slog.Any("backends_added", added), slog.Any("backends_removed", removed))
	for _, s := range fixed {
		a.log.Warn("config change needs a restart", slog.String("setting", s), slog.String("keeping", "the value in use"))
	}
	a.logWarnings(cfg)
	return nil
}

func backendNames(cfg *config.Config) map[string]bool {
	names := make(map[string]bool, len(cfg.Backends))
	for _, b := range cfg.Backends {
		names[b.Name] = true
	}
	return names
}

// keepRestartOnly keeps in cfg, from old (the config in use), the settings
// fixed for the life of the process, and names those cfg asked to change.
func keepRestartOnly(old, cfg *config.Config) []string {
	var changed []string
	if (old.TLS.CertFile != "") != (cfg.TLS.CertFile != "") {
		changed = append(changed, "tls (turning it on or off)")
		cfg.TLS = old.TLS
	}
	keep(&changed, "listen", old.Listen, &cfg.Listen)
	keep(&changed, "tracing", old.Tracing, &cfg.Tracing)
	keep(&changed, "store", old.Store, &cfg.Store)
	keep(&changed, "timeouts.connect", old.Timeouts.Connect, &cfg.Timeouts.Connect)
	keep(&changed, "timeouts.response_header", old.Timeouts.ResponseHeader, &cfg.Timeouts.ResponseHeader)
	keep(&changed, "timeouts.read_header", old.Timeouts.ReadHeader, &cfg.Timeouts.ReadHeader)
	keep(&changed, "timeouts.idle", old.Timeouts.Idle, &cfg.Timeouts.Idle)
	return changed
}

// keep sets *cur to old, and adds name to changed, when they differ.
func keep[T any](changed *[]string, name string, old T, cur *T) {
	if !reflect.DeepEqual(old, *cur) {
		*changed = append(*changed, name)
		*cur = old
	}
}

// CheckTLS loads the listener's certificate and key, as serve and a reload
// will: for `llmgate validate`, so that a config it passes starts.
func CheckTLS(cfg *config.Config) []config.Problem {
	if cfg.TLS.CertFile == "" || cfg.TLS.KeyFile == "" {
		return nil // both or neither: the config's own check says so
	}
	if _, err := loadCert(cfg.TLS); err != nil {
		return []config.Problem{{Path: "tls", Message: err.Error()}}
	}
	return nil
}

// loadCert reads the listener's certificate and key.
func loadCert(t config.TLS) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", t.CertFile, t.KeyFile, err)
	}
	return &c, nil
}
