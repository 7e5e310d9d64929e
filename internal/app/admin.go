package app

import (
	"log/slog"

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

// configure brings what is derived from the config in use up to date: the
// metrics' bounded label sets.
func (a *App) configure(cfg *config.Config) {
	var models, backends []string
	seen := map[string]bool{}
	addModel := func(m string) {
		if !seen[m] {
			seen[m] = true
			models = append(models, m)
		}
	}
	for _, b := range cfg.Backends {
		backends = append(backends, b.Name)
		for from, to := range b.Deployments {
			addModel(from)
			addModel(to)
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
