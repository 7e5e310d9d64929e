package app

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/upstream"
)

// fanout passes the proxy's events to several receivers in turn.
type fanout []proxy.Events

func (f fanout) Transition(t upstream.Transition) {
	for _, e := range f {
		e.Transition(t)
	}
}

func (f fanout) Attempt(a *proxy.AttemptInfo) {
	for _, e := range f {
		e.Attempt(a)
	}
}

func (f fanout) Request(r *proxy.RequestInfo) {
	for _, e := range f {
		e.Request(r)
	}
}

// upstreamPrefix is a backend's base URL, to name the backend an upstream
// request goes to.
type upstreamPrefix struct {
	scheme, host, path string
	name               string
}

// configure brings what is derived from the config in use up to date: the
// metrics' bounded label sets and the upstream URL → backend table.
func (a *App) configure(cfg *config.Config) {
	var models, backends []string
	seen := map[string]bool{}
	addModel := func(m string) {
		if !seen[m] {
			seen[m] = true
			models = append(models, m)
		}
	}
	prefixes := make([]upstreamPrefix, 0, len(cfg.Backends))
	for _, b := range cfg.Backends {
		backends = append(backends, b.Name)
		for from, to := range b.Deployments {
			addModel(from)
			addModel(to)
		}
		if u, err := url.Parse(b.URL); err == nil {
			prefixes = append(prefixes, upstreamPrefix{scheme: u.Scheme, host: u.Host, path: strings.TrimSuffix(u.Path, "/"), name: b.Name})
		}
	}
	for from, to := range cfg.Aliases {
		addModel(from)
		addModel(to)
	}
	for _, k := range cfg.Keys {
		for _, m := range k.Models {
			addModel(m)
		}
	}
	a.metrics.Configure(models, backends)
	a.upstreams.Store(&prefixes)
}

// backendOf names the backend an upstream request goes to: the one whose
// base URL is the longest prefix of the request's URL; "" if none.
func (a *App) backendOf(r *http.Request) string {
	p := a.upstreams.Load()
	if p == nil {
		return ""
	}
	best, bestLen := "", -1
	for _, u := range *p {
		if u.host == r.URL.Host && u.scheme == r.URL.Scheme && strings.HasPrefix(r.URL.Path, u.path) && len(u.path) > bestLen {
			best, bestLen = u.name, len(u.path)
		}
	}
	return best
}

// isClientKey reports whether a secret is one of the client keys in use.
func (a *App) isClientKey(presented string) bool {
	return a.proxy.Config().Keys.Lookup(presented) != nil
}

// logWarnings logs what `llmgate validate` would warn about.
func (a *App) logWarnings(cfg *config.Config) {
	for _, p := range cfg.Warnings() {
		a.log.Warn("config warning", slog.String("problem", p.String()))
	}
}
