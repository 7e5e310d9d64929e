// Package app wires llmgate together from a Config and runs its lifecycle.
package app

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/balance"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/h1"
	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/proxy"
	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/retry"
	"github.com/llmgate/llmgate/internal/upstream"
)

// snapshot builds the proxy's immutable view of cfg, taking each backend's
// live state from reg so that state survives a reload.
func snapshot(cfg *config.Config, reg *upstream.Registry) (*proxy.Config, error) {
	specs := make([]auth.Spec, 0, len(cfg.Keys))
	for _, k := range cfg.Keys {
		meta := map[string]string{}
		if k.Team != "" {
			meta["team"] = k.Team
		}
		if k.Owner != "" {
			meta["owner"] = k.Owner
		}
		specs = append(specs, auth.Spec{ID: auth.KeyID(k.Name), Plain: k.Key.Reveal(), SHA256Hex: k.KeySHA256, Models: k.Models, Meta: meta})
	}
	keys, err := auth.NewSet(specs)
	if err != nil {
		return nil, err
	}
	ro := cfg.Routing
	pc := &proxy.Config{
		Keys:    keys,
		Retries: cfg.Retry.EffectiveCount(),
		Backoff: retry.Backoff{
			Interval:       cfg.Retry.Interval.D(),
			Delta:          cfg.Retry.Delta.D(),
			MaxInterval:    cfg.Retry.MaxInterval.D(),
			FirstFastRetry: cfg.Retry.FirstFastRetry,
		},
		MaxBody:            cfg.MaxBodyBytes,
		MaxHeader:          cfg.MaxHeaderBytes,
		MaxStreams:         map[auth.KeyID]int64{},
		StreamIdle:         cfg.Timeouts.StreamIdle.D(),
		MaxWait:            ro.MaxWait.D(),
		Total:              cfg.Timeouts.Total.D(),
		Steering:           *ro.CapacitySteering,
		BudgetRatio:        ro.RetryBudget.Ratio,
		BudgetMinPerSecond: ro.RetryBudget.MinPerSecond,
		StickyKey:          ro.Sticky.Key,
		StickyTTL:          ro.Sticky.TTL.D(),
		Routes:             map[string]*proxy.Route{},
		Limits:             map[auth.KeyID]ratelimit.Limits{},
		StoreTimeout:       cfg.Store.Timeout.D(),
		StoreFailOpen:      cfg.Store.OnFailure == "open",
	}
	for _, k := range cfg.Keys {
		if k.MaxStreams > 0 {
			pc.MaxStreams[auth.KeyID(k.Name)] = k.MaxStreams
		}
		l := ratelimit.Limits{RPM: k.RPM, TPM: k.TPM, DailyTokens: k.DailyTokens, MonthlyTokens: k.MonthlyTokens}
		if !l.Unlimited() {
			pc.Limits[auth.KeyID(k.Name)] = l
		}
	}
	if cfg.Retry.Mode == "apim" {
		pc.Mode = proxy.APIM
	}
	switch ro.Policy {
	case "least_inflight":
		pc.Policy = proxy.LeastInflight
	case "latency":
		pc.Policy = proxy.Latency
	case "headroom":
		pc.Policy = proxy.Headroom
	}
	pc.All = &proxy.Route{Name: "*"}
	var wildcard []proxy.Member
	for i, b := range cfg.Backends {
		p, err := adapter(b)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", b.Name, err)
		}
		st := reg.Get(b.Name)
		st.Configure(upstream.Settings{
			MaxInflight: b.MaxInflight,
			TPM:         b.TPM,
			RPM:         b.RPM,
			Circuit: upstream.Circuit{
				Failures:    ro.Circuit.Failures,
				Ratio:       ro.Circuit.Ratio,
				Window:      ro.Circuit.Window.D(),
				MinRequests: ro.Circuit.MinRequests,
				Cooldown:    ro.Circuit.Cooldown.D(),
			},
			SlowStart:    ro.SlowStart.D(),
			AuthCooldown: ro.AuthCooldown.D(),
		})
		pc.Backends = append(pc.Backends, proxy.Backend{
			Name: b.Name, Provider: p, State: st,
			Weight: float64(b.EffectiveWeight()), Priority: b.Priority,
		})
		pc.All.Members = append(pc.All.Members, proxy.Member{Backend: i})
		if b.Deployments == nil {
			wildcard = append(wildcard, proxy.Member{Backend: i})
			continue
		}
		for from, to := range b.Deployments {
			rt := pc.Routes[from]
			if rt == nil {
				rt = &proxy.Route{Name: from}
				pc.Routes[from] = rt
			}
			rt.Members = append(rt.Members, proxy.Member{Backend: i, Name: to})
		}
	}
	pc.Aliases = cfg.Aliases
	for name := range pc.Routes {
		pc.Models = append(pc.Models, name)
	}
	for name, to := range cfg.Aliases {
		if pc.Routes[to] != nil || len(wildcard) > 0 {
			pc.Models = append(pc.Models, name) // an alias nothing serves is no model to list
		}
	}
	if len(wildcard) > 0 {
		pc.Wildcard = &proxy.Route{Name: "*", Members: wildcard}
		// A backend that serves every name serves the listed ones too.
		for _, rt := range pc.Routes {
			rt.Members = append(rt.Members, wildcard...)
		}
	}
	return pc, nil
}

// adapter builds the provider adapter for a backend.
func adapter(b config.Backend) (provider.Adapter, error) {
	if b.Type == "openai" {
		return provider.NewOpenAI(b.URL, b.APIKey.Reveal())
	}
	o := provider.AzureOptions{URL: b.URL, APIKey: b.APIKey.Reveal(), APIVersion: b.APIVersion}
	if b.Auth == "entra" {
		e := b.Entra
		ts, err := provider.NewEntra(provider.EntraOptions{Backend: b.Name, Authority: e.Authority, TenantID: e.TenantID,
			ClientID: e.ClientID, ClientSecret: e.ClientSecret.Reveal(), FederatedTokenFile: e.FederatedTokenFile, Scope: e.Scope})
		if err != nil {
			return nil, err
		}
		o.Tokens = ts
	}
	return provider.NewAzure(o)
}

// newTransport returns the upstream transport: warm keep-alive pools, no
// transparent decompression (bodies pass through as they are), and the
// configured connect and header timeouts. Plain-HTTP upstreams go over
// h1's lean HTTP/1.1 client; TLS upstreams (HTTP/2) and proxied ones over
// net/http's Transport.
func newTransport(t config.Timeouts) *h1.Transport {
	d := &net.Dialer{Timeout: t.Connect.D(), KeepAlive: 30 * time.Second}
	fallback := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   t.Connect.D(),
		ResponseHeaderTimeout: t.ResponseHeader.D(),
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
	}
	return h1.New(h1.Options{
		Fallback:              fallback,
		Proxy:                 http.ProxyFromEnvironment,
		DialTimeout:           t.Connect.D(),
		KeepAlive:             30 * time.Second,
		ResponseHeaderTimeout: t.ResponseHeader.D(),
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   1024,
	})
}

// A config's backends fit in one routing candidate set.
const _ = uint(balance.MaxCandidates - config.MaxBackends)
