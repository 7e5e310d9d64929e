package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/upstream"
)

// healthTick is how often the health checker looks for a due probe.
const healthTick = 100 * time.Millisecond

// runHealthChecks probes every backend that has health_check.interval set,
// each on its own interval, until ctx ends. A probe is a GET of the path on
// the backend with its credential; any answer but a 5xx is healthy. Results
// feed the backend's circuit breaker. Config reloads are followed.
func (a *App) runHealthChecks(ctx context.Context, client *http.Client) {
	var wg sync.WaitGroup
	defer wg.Wait()
	next := map[string]time.Time{}
	busy := map[string]bool{}
	var mu sync.Mutex // guards busy
	t := time.NewTicker(healthTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cfg := a.cfg.Load()
			snap := a.proxy.Config()
			for i, b := range cfg.Backends {
				hc := b.HealthCheck
				if hc.Interval <= 0 || i >= len(snap.Backends) || snap.Backends[i].Name != b.Name {
					continue
				}
				if due, ok := next[b.Name]; ok && now.Before(due) {
					continue
				}
				mu.Lock()
				if busy[b.Name] {
					mu.Unlock()
					continue
				}
				busy[b.Name] = true
				mu.Unlock()
				next[b.Name] = now.Add(hc.Interval.D())
				pb := snap.Backends[i]
				wg.Go(func() {
					defer func() { mu.Lock(); delete(busy, pb.Name); mu.Unlock() }()
					healthy := a.probe(ctx, client, pb.Provider, hc.Path, hc.Timeout.D())
					if tr, changed := pb.State.Report(time.Now(), healthy); changed {
						if tr.From == upstream.HalfOpen { // the check was the probe
							a.proxy.CircuitChanged(upstream.Transition{Backend: tr.Backend, From: upstream.Open, To: upstream.HalfOpen,
								Reason: "cool-down over: one probe"}, "health check: ")
						}
						a.proxy.CircuitChanged(tr, "health check: ")
					}
				})
			}
		}
	}
}

func (a *App) probe(ctx context.Context, client *http.Client, ad provider.Adapter, path string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, q, _ := strings.Cut(path, "?")
	u := ad.URL(provider.Request{Style: provider.AzureOther, Op: p, RawQuery: q})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false
	}
	if err := ad.Authorize(ctx, req.Header); err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode < 500
}
