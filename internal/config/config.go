// Package config reads, checks and prints llmgate's YAML configuration.
//
// Load expands ${NAME} references to environment variables, rejects unknown
// keys, fills defaults and validates, returning every problem found with its
// place in the file. Secrets are held in Secret, which masks itself wherever
// it could be printed.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Config is the whole gateway configuration. Values are immutable once
// loaded; a reload builds a new Config.
type Config struct {
	// given holds the paths the file set ("routing.max_wait"), so that an
	// explicit 0 is told from an absent setting where 0 means something.
	given map[string]int

	// Listen is the gateway's address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// Keys are the client keys; a request must carry one of them. At least one is required.
	Keys []Key `yaml:"keys"`
	// Backends are the upstream deployments. At least one is required.
	Backends []Backend `yaml:"backends"`
	// Retry is the retry and failover policy.
	Retry Retry `yaml:"retry"`
	// MaxHeaderBytes bounds a request's headers; larger gets 431 in the JSON
	// error shape. Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds the request body kept in memory for replay.
	// Default 32 MiB; larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Timeouts bound every phase of a request.
	Timeouts Timeouts `yaml:"timeouts"`
	// Routing chooses among backends.
	Routing Routing `yaml:"routing"`
	// Aliases map a name clients use to the model or deployment name routes
	// know, e.g. gpt-4o: gpt-4o-2024-08-06.
	Aliases map[string]string `yaml:"aliases"`
	// Admin protects /status, /admin/*, /metrics and /debug/pprof.
	Admin Admin `yaml:"admin"`
	// Store holds shared state (key limits, quotas, usage, backend throttles).
	Store Store `yaml:"store"`
	// Tracing exports OpenTelemetry traces. Off unless an endpoint is set.
	Tracing Tracing `yaml:"tracing"`
	// TLS serves the listener over HTTPS when both files are set; they are
	// read again on reload.
	TLS TLS `yaml:"tls"`
}

// Admin is the operator's access.
type Admin struct {
	// Key is the admin key (api-key or Bearer). Never a client key. Empty:
	// the admin endpoints are disabled (404).
	Key Secret `yaml:"key"`
	// MetricsPublic serves /metrics without a key, as Prometheus scrapers
	// expect (default true: metrics carry key and backend names, never a
	// secret). false: /metrics needs the admin key like the other admin
	// endpoints.
	MetricsPublic *bool `yaml:"metrics_public"`
}

// MetricsOpen reports whether /metrics is served without the admin key.
func (a Admin) MetricsOpen() bool { return a.MetricsPublic == nil || *a.MetricsPublic }

// Store selects where shared state lives.
type Store struct {
	// Type is "memory" (default: one instance, nothing to install) or "redis".
	Type string `yaml:"type"`
	// URL of Redis: redis://[:password@]host:port/db, rediss://...,
	// redis+sentinel://[:password@]h1:p,h2:p/master/db or redis+cluster://h1:p,h2:p.
	URL Secret `yaml:"url"`
	// OnFailure is the policy while Redis is unreachable: "open" (default:
	// keep serving, enforcing limits locally per instance) or "closed"
	// (refuse requests that need a limit decision with 503).
	OnFailure string `yaml:"on_failure"`
	// Timeout of one Redis call. Default 250ms.
	Timeout Duration `yaml:"timeout"`
}

// Tracing configures OpenTelemetry.
type Tracing struct {
	// Endpoint of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318. Empty: off.
	Endpoint string `yaml:"endpoint"`
	// ServiceName in the traces. Default "llmgate".
	ServiceName string `yaml:"service_name"`
	// SampleRatio is the fraction, 0 to 1, of requests without a sampled
	// caller whose traces we start (parent-based: a caller's sampled flag
	// is always followed). Default (key absent or null) 1; an explicit 0
	// starts none of our own traces and records only what callers sampled.
	SampleRatio float64 `yaml:"sample_ratio"`
}

// TLS holds the listener's certificate.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Routing is how a backend is chosen and when one is left alone.
type Routing struct {
	// Policy is how a backend is drawn within a priority group: "weighted"
	// (default), "least_inflight", "latency" or "headroom".
	Policy string `yaml:"policy"`
	// CapacitySteering steers requests away from a backend about to run out
	// of tokens or requests (from its x-ratelimit-remaining-* headers and its
	// declared tpm/rpm). Nil means true.
	CapacitySteering *bool `yaml:"capacity_steering"`
	// Circuit configures each backend's breaker.
	Circuit CircuitBreaker `yaml:"circuit"`
	// SlowStart is how long a recovered backend takes to ramp back to its
	// full weight. Default 10s; "-1s" disables the ramp.
	SlowStart Duration `yaml:"slow_start"`
	// AuthCooldown is how long a backend whose credential was refused
	// (401/403) is left alone. Default 60s.
	AuthCooldown Duration `yaml:"auth_cooldown"`
	// MaxWait is the longest the gateway waits for a throttled backend when
	// every eligible one is (and the request's deadline allows); beyond it
	// the client gets 429 at once with the true Retry-After. Default: the
	// larger of retry.max_interval and 10s.
	MaxWait Duration `yaml:"max_wait"`
	// RetryBudget caps retries across the gateway.
	RetryBudget RetryBudget `yaml:"retry_budget"`
	// Sticky keeps a conversation on one backend for prompt caching.
	Sticky Sticky `yaml:"sticky"`
}

// CircuitBreaker opens a backend's circuit on consecutive failures or a
// failure ratio; after Cooldown a single probe decides. Zero fields take defaults.
type CircuitBreaker struct {
	// Failures in a row that open the circuit. Default 5; -1 disables.
	Failures int `yaml:"failures"`
	// Ratio of failed attempts within Window that opens it. Default 0.5; -1 disables.
	Ratio float64 `yaml:"ratio"`
	// Window for Ratio. Default 10s.
	Window Duration `yaml:"window"`
	// MinRequests in Window before Ratio applies. Default 20.
	MinRequests int `yaml:"min_requests"`
	// Cooldown before the half-open probe. Default 10s.
	Cooldown Duration `yaml:"cooldown"`
}

// RetryBudget caps extra attempts to a fraction of recent requests, so an
// outage never becomes a retry storm, with a floor so a quiet gateway can
// always fail a request over.
type RetryBudget struct {
	// Ratio of retries to requests over the last 10s. Default 0.5.
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond retries always allowed (over the 10s window). Default 50.
	MinPerSecond float64 `yaml:"min_per_second"`
}

// Sticky keeps requests that share a key on the backend that served the
// first of them, while it is available. It never blocks failover.
type Sticky struct {
	// Key is "prompt_cache_key", "user" or "header:NAME". Empty: off.
	Key string `yaml:"key"`
	// TTL since the last request. Default 5m.
	TTL Duration `yaml:"ttl"`
	// MaxEntries bounds the table. Default 100000.
	MaxEntries int `yaml:"max_entries"`
}

// Entra is Microsoft Entra ID's client-credentials flow (ClientSecret) or
// workload-identity flow (FederatedTokenFile).
type Entra struct {
	TenantID           string `yaml:"tenant_id"`
	ClientID           string `yaml:"client_id"`
	ClientSecret       Secret `yaml:"client_secret"`
	FederatedTokenFile string `yaml:"federated_token_file"`
	// Authority is the identity provider. Default https://login.microsoftonline.com.
	Authority string `yaml:"authority"`
	// Scope requested. Default https://cognitiveservices.azure.com/.default.
	Scope string `yaml:"scope"`
}

// HealthCheck probes a backend actively. Zero Interval: off.
type HealthCheck struct {
	// Path is requested with GET on the backend's URL, e.g.
	// /openai/models?api-version=2024-02-01. Any answer but 5xx is healthy.
	Path string `yaml:"path"`
	// Interval between probes.
	Interval Duration `yaml:"interval"`
	// Timeout of one probe. Default 5s.
	Timeout Duration `yaml:"timeout"`
}

// Key is one client key.
type Key struct {
	// Name identifies the key in logs and metrics; required and unique.
	Name string `yaml:"name"`
	// Key is the key itself, usually from ${ENV}. Exactly one of Key and KeySHA256 is required.
	Key Secret `yaml:"key"`
	// KeySHA256 is the hex SHA-256 digest of the key, so the file holds no secret.
	KeySHA256 string `yaml:"key_sha256"`
	// Models the key may use (names as clients send them, or after aliases).
	// Absent: all.
	Models []string `yaml:"models"`
	// RPM and TPM limit the key per rolling minute. Zero: no limit.
	RPM int64 `yaml:"rpm"`
	TPM int64 `yaml:"tpm"`
	// DailyTokens and MonthlyTokens are token quotas per calendar day and
	// month (UTC). Zero: none.
	DailyTokens   int64 `yaml:"daily_tokens"`
	MonthlyTokens int64 `yaml:"monthly_tokens"`
	// MaxStreams bounds the key's concurrent streaming requests. Zero: no bound.
	MaxStreams int64 `yaml:"max_streams"`
	// Team and Owner are carried into the access log and the
	// llmgate_key_info metric. Empty: none. They may also be given as
	// metadata.team and metadata.owner; giving both forms with different
	// values is an error.
	Team  string `yaml:"team"`
	Owner string `yaml:"owner"`
	// Metadata holds free-form string entries about the key, e.g.
	// {team: search, owner: alice@example.com, cost_center: "4711"}.
	// Its team and owner entries are the same as Team and Owner (Defaults
	// copies them there); names are lower case letters, digits and '_'.
	// Nil: none.
	Metadata map[string]string `yaml:"metadata"`
}

// Meta returns the key's metadata entries with Team and Owner as "team"
// and "owner"; nil when there is none.
func (k Key) Meta() map[string]string {
	if len(k.Metadata) == 0 && k.Team == "" && k.Owner == "" {
		return nil
	}
	m := make(map[string]string, len(k.Metadata)+2)
	for n, v := range k.Metadata {
		m[n] = v
	}
	if k.Team != "" {
		m["team"] = k.Team
	}
	if k.Owner != "" {
		m["owner"] = k.Owner
	}
	return m
}

// Backend is one upstream deployment (an Azure OpenAI resource).
type Backend struct {
	// Name identifies the backend in logs, headers and metrics; required and unique.
	Name string `yaml:"name"`
	// URL is the base URL, e.g. https://example-se.openai.azure.com; /openai/... is
	// appended, and a URL already ending in /openai is not doubled. Required.
	URL string `yaml:"url"`
	// Type is "azure" (default: api-key header, /openai/deployments/{name}/...)
	// or "openai" (Bearer token; URL is the base an OpenAI SDK takes, /v1
	// included; the body's model is rewritten to the upstream's name).
	Type string `yaml:"type"`
	// APIKey is the backend's credential: the api-key header for azure, the
	// Bearer token for openai. Empty sends no credential (local servers).
	APIKey Secret `yaml:"api_key"`
	// Auth is "key" (default) or "entra" (Azure only: Microsoft Entra ID tokens).
	Auth string `yaml:"auth"`
	// Entra configures auth: entra.
	Entra Entra `yaml:"entra"`
	// APIVersion is sent to an azure backend with requests that came in
	// OpenAI style. Default 2024-10-21.
	APIVersion string `yaml:"api_version"`
	// Weight is the backend's share of traffic. Nil means 1; 0 means the backend
	// takes traffic only when every weighted one has been tried.
	Weight *int `yaml:"weight"`
	// Priority groups backends: traffic goes to the best (lowest) group that
	// has an available backend; lower groups take the spill-over. Default 1.
	Priority int `yaml:"priority"`
	// Deployments maps the names clients use to this backend's own
	// deployment names. Absent: the backend serves every name unchanged.
	Deployments map[string]string `yaml:"deployments"`
	// MaxInflight caps concurrent requests to this backend. Zero: no cap.
	MaxInflight int64 `yaml:"max_inflight"`
	// TPM and RPM declare the backend's capacity per minute, to steer traffic
	// away before it runs out. Zero: unknown.
	TPM int64 `yaml:"tpm"`
	RPM int64 `yaml:"rpm"`
	// HealthCheck probes the backend actively. Absent: passive health only.
	HealthCheck HealthCheck `yaml:"health_check"`
}

// EffectiveWeight is the weight with its default applied.
func (b Backend) EffectiveWeight() int {
	if b.Weight == nil {
		return 1
	}
	return *b.Weight
}

// Retry is API Management's retry policy, plus llmgate's failover rules.
type Retry struct {
	// Count is the number of retries after the first attempt. Nil means 3; 0 disables retries.
	Count *int `yaml:"count"`
	// Interval, Delta and MaxInterval shape the wait before retry n, as in API
	// Management: only Interval → fixed; Interval and Delta → Interval+(n-1)·Delta;
	// all three → Interval+2^(n-1)·random(0.8·Delta, 1.2·Delta), capped at MaxInterval.
	// If all three are zero the defaults are 1s, 1s and 8s.
	Interval    Duration `yaml:"interval"`
	Delta       Duration `yaml:"delta"`
	MaxInterval Duration `yaml:"max_interval"`
	// FirstFastRetry makes the first retry immediate.
	FirstFastRetry bool `yaml:"first_fast_retry"`
	// Mode is "smart" (default: a retry that switches to a fresh, available
	// backend goes at once; the formula's wait applies when a backend already
	// tried must be called again) or "apim" (wait the formula before every
	// retry, as API Management does).
	Mode string `yaml:"mode"`
}

// EffectiveCount is Count with its default applied.
func (r Retry) EffectiveCount() int {
	if r.Count == nil {
		return 3
	}
	return *r.Count
}

// Timeouts bound the phases of a request. Zero fields take the defaults
// documented on each.
type Timeouts struct {
	// Connect bounds dialing an upstream (TCP and TLS). Default 5s.
	Connect Duration `yaml:"connect"`
	// ResponseHeader bounds the wait for an upstream's response headers after
	// the request is sent. Default 120s (a long non-streamed completion).
	ResponseHeader Duration `yaml:"response_header"`
	// StreamIdle bounds the gap between two chunks of a streamed response. Default 60s.
	StreamIdle Duration `yaml:"stream_idle"`
	// ReadHeader is the server's limit for reading a client's request headers. Default 10s.
	ReadHeader Duration `yaml:"read_header"`
	// Idle is how long the server keeps an idle client connection. Default 120s.
	Idle Duration `yaml:"idle"`
	// ShutdownGrace bounds the drain of in-flight requests on SIGTERM. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// DrainDelay keeps the listener accepting for this long after SIGTERM,
	// with /readyz answering 503, so a load balancer stops sending before
	// new connections are refused (a Kubernetes preStop sleep does the
	// same). Default 0: the listener closes at once.
	DrainDelay Duration `yaml:"drain_delay"`
	// Total bounds a whole request: every attempt and wait. A client's
	// x-stainless-timeout header (seconds) can shorten it. Zero: 10m.
	Total Duration `yaml:"total"`
}

// Defaults fills every unset field with its documented default.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 32 << 20
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.Retry.Mode == "" {
		c.Retry.Mode = "smart"
	}
	if c.Retry.Interval == 0 && c.Retry.Delta == 0 && c.Retry.MaxInterval == 0 {
		c.Retry.Interval = Duration(time.Second)
		c.Retry.Delta = Duration(time.Second)
		c.Retry.MaxInterval = Duration(8 * time.Second)
	}
	t := &c.Timeouts
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&t.Connect, 5*time.Second)
	def(&t.ResponseHeader, 120*time.Second)
	def(&t.StreamIdle, 60*time.Second)
	def(&t.ReadHeader, 10*time.Second)
	def(&t.Idle, 120*time.Second)
	def(&t.ShutdownGrace, 30*time.Second)
	def(&t.Total, 10*time.Minute)
	ro := &c.Routing
	if ro.Policy == "" {
		ro.Policy = "weighted"
	}
	if ro.CapacitySteering == nil {
		on := true
		ro.CapacitySteering = &on
	}
	// For these, 0 given means 0 (c.set): never wait for a backend to
	// recover; no retries beyond the floor; no floor.
	if ro.MaxWait == 0 && !c.set("routing.max_wait") {
		ro.MaxWait = max(c.Retry.MaxInterval, c.Retry.Interval, Duration(10*time.Second))
	}
	if ro.RetryBudget.Ratio == 0 && !c.set("routing.retry_budget.ratio") {
		ro.RetryBudget.Ratio = 0.5
	}
	if ro.RetryBudget.MinPerSecond == 0 && !c.set("routing.retry_budget.min_per_second") {
		ro.RetryBudget.MinPerSecond = 50
	}
	if c.Store.Type == "" {
		c.Store.Type = "memory"
	}
	if c.Store.OnFailure == "" {
		c.Store.OnFailure = "open"
	}
	if c.Store.Timeout == 0 {
		c.Store.Timeout = Duration(250 * time.Millisecond)
	}
	if c.Tracing.ServiceName == "" {
		c.Tracing.ServiceName = "llmgate"
	}
	if c.Tracing.SampleRatio == 0 && !c.set("tracing.sample_ratio") {
		c.Tracing.SampleRatio = 1
	}
	if ro.Sticky.TTL == 0 {
		ro.Sticky.TTL = Duration(5 * time.Minute)
	}
	if ro.Sticky.MaxEntries == 0 {
		ro.Sticky.MaxEntries = 100000
	}
	for i := range c.Keys {
		k := &c.Keys[i]
		if k.Team == "" {
			k.Team = k.Metadata["team"]
		}
		if k.Owner == "" {
			k.Owner = k.Metadata["owner"]
		}
	}
	for i := range c.Backends {
		if c.Backends[i].Type == "" {
			c.Backends[i].Type = "azure"
		}
		if c.Backends[i].Auth == "" {
			c.Backends[i].Auth = "key"
		}
		if c.Backends[i].Priority == 0 {
			c.Backends[i].Priority = 1
		}
		if hc := &c.Backends[i].HealthCheck; hc.Interval > 0 && hc.Timeout == 0 {
			hc.Timeout = Duration(5 * time.Second)
		}
	}
}

// Validate checks a defaulted config and returns every problem found.
func (c *Config) Validate() []Problem {
	var d decoder
	if c.Listen == "" {
		d.add("listen", nil, "required")
	} else if !listenAddr(c.Listen) {
		d.add("listen", nil, "must be host:port or :port, the port a number up to 65535")
	}
	if len(c.Keys) == 0 {
		d.add("keys", nil, "at least one client key is required")
	}
	names := map[string]string{}
	for i, k := range c.Keys {
		p := fmt.Sprintf("keys[%d]", i)
		if k.Name == "" {
			d.add(p+".name", nil, "required")
		} else if prev, dup := names[k.Name]; dup {
			d.add(p+".name", nil, "duplicate of %s.name %q", prev, k.Name)
		} else {
			names[k.Name] = p
		}
		switch {
		case k.Key == "" && k.KeySHA256 == "":
			d.add(p+".key", nil, "required (or key_sha256)")
		case k.Key != "" && k.KeySHA256 != "":
			d.add(p+".key_sha256", nil, "give either key or key_sha256, not both")
		case k.KeySHA256 != "" && !isHex(k.KeySHA256, 64):
			d.add(p+".key_sha256", nil, "must be 64 hex digits")
		}
		if k.RPM < 0 || k.TPM < 0 || k.DailyTokens < 0 || k.MonthlyTokens < 0 || k.MaxStreams < 0 {
			d.add(p, nil, "rpm, tpm, daily_tokens, monthly_tokens and max_streams must be >= 0")
		}
		checkMetadata(&d, p, k)
	}
	checkKeyClashes(&d, c)
	if len(c.Backends) == 0 {
		d.add("backends", nil, "at least one backend is required")
	} else if len(c.Backends) > MaxBackends {
		d.add("backends", nil, "at most %d backends are supported", MaxBackends)
	}
	bnames := map[string]string{}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		if b.Name == "" {
			d.add(p+".name", nil, "required")
		} else if prev, dup := bnames[b.Name]; dup {
			d.add(p+".name", nil, "duplicate of %s.name %q", prev, b.Name)
		} else {
			bnames[b.Name] = p
		}
		if b.URL == "" {
			d.add(p+".url", nil, "required")
		} else if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.add(p+".url", nil, "must be an absolute http or https URL")
		} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			d.add(p+".url", nil, "must not carry a query, fragment or user info")
		}
		if b.Weight != nil && *b.Weight < 0 {
			d.add(p+".weight", nil, "must be >= 0")
		}
		switch b.Type {
		case "azure", "openai":
		default:
			d.add(p+".type", nil, "must be azure or openai")
		}
		switch {
		case b.Auth == "key":
		case b.Auth == "entra" && b.Type == "azure":
			e := b.Entra
			if e.TenantID == "" {
				d.add(p+".entra.tenant_id", nil, "required with auth: entra")
			}
			if e.ClientID == "" {
				d.add(p+".entra.client_id", nil, "required with auth: entra")
			}
			if (e.ClientSecret == "") == (e.FederatedTokenFile == "") {
				d.add(p+".entra", nil, "give exactly one of client_secret and federated_token_file")
			}
			if b.APIKey != "" {
				d.add(p+".api_key", nil, "not used with auth: entra")
			}
		case b.Auth == "entra":
			d.add(p+".auth", nil, "entra is for azure backends")
		default:
			d.add(p+".auth", nil, "must be key or entra")
		}
		if b.Priority < 0 {
			d.add(p+".priority", nil, "must be >= 1")
		}
		for from, to := range b.Deployments {
			if !validName(from) {
				d.add(p+".deployments", nil, "invalid deployment name %q", from)
			}
			if !validName(to) {
				d.add(p+".deployments."+from, nil, "invalid deployment name %q", to)
			}
		}
		if b.MaxInflight < 0 || b.TPM < 0 || b.RPM < 0 {
			d.add(p, nil, "max_inflight, tpm and rpm must be >= 0")
		}
		if hc := b.HealthCheck; hc.Interval > 0 && !strings.HasPrefix(hc.Path, "/") {
			d.add(p+".health_check.path", nil, "must start with /")
		}
	}
	r := c.Retry
	if r.Count != nil && (*r.Count < 0 || *r.Count > 50) {
		d.add("retry.count", nil, "must be between 0 and 50")
	}
	if r.Mode != "smart" && r.Mode != "apim" {
		d.add("retry.mode", nil, "must be smart or apim")
	}
	if r.MaxInterval > 0 && r.MaxInterval < r.Interval {
		d.add("retry.max_interval", nil, "must be >= retry.interval")
	}
	for from, to := range c.Aliases {
		if !validName(from) || !validName(to) {
			d.add("aliases."+from, nil, "invalid model name")
		}
	}
	ro := c.Routing
	switch ro.Policy {
	case "weighted", "least_inflight", "latency", "headroom":
	default:
		d.add("routing.policy", nil, "must be weighted, least_inflight, latency or headroom")
	}
	if ro.RetryBudget.Ratio < 0 || ro.RetryBudget.MinPerSecond < 0 {
		d.add("routing.retry_budget", nil, "ratio and min_per_second must be >= 0")
	}
	if k := ro.Sticky.Key; k != "" && k != "prompt_cache_key" && k != "user" && !(strings.HasPrefix(k, "header:") && len(k) > len("header:")) {
		d.add("routing.sticky.key", nil, "must be prompt_cache_key, user or header:NAME")
	}
	switch c.Store.Type {
	case "memory":
	case "redis":
		if c.Store.URL == "" {
			d.add("store.url", nil, "required when store.type is redis")
		}
	default:
		d.add("store.type", nil, "must be memory or redis")
	}
	if c.Store.OnFailure != "open" && c.Store.OnFailure != "closed" {
		d.add("store.on_failure", nil, "must be open or closed")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		d.add("tls", nil, "cert_file and key_file go together")
	}
	if e := string(c.Tracing.Endpoint); e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.add("tracing.endpoint", nil, "must be an http or https URL with a host")
		}
	}
	if r := c.Tracing.SampleRatio; !(r >= 0 && r <= 1) { // NaN too
		d.add("tracing.sample_ratio", nil, "must be between 0 and 1")
	}
	if c.MaxBodyBytes < 0 {
		d.add("max_body_bytes", nil, "must be positive")
	}
	negativeDurations(&d, reflect.ValueOf(c).Elem(), "")
	return d.problems
}

// negativeDurations reports every duration setting below zero, wherever
// it is (timeouts, retry, routing, backends' health checks...).
func negativeDurations(d *decoder, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			negativeDurations(d, v.Elem(), path)
		}
	case reflect.Slice:
		for i := range v.Len() {
			negativeDurations(d, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() || fieldsTag(f) == "-" {
				continue
			}
			negativeDurations(d, v.Field(i), join(path, fieldsTag(f)))
		}
	case reflect.Int64:
		if v.Type() == reflect.TypeFor[Duration]() && v.Int() < 0 {
			d.add(path, nil, "must not be negative")
		}
	}
}

// MaxBackends is the most backends a config may list (one bit each in a
// routing candidate set).
const MaxBackends = 64

// listenAddr reports whether a is an address net.Listen takes for TCP:
// host:port or :port with a numeric port.
func listenAddr(a string) bool {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// checkKeyClashes reports client keys that are the same secret as another
// client key (every request would count against one of their names) or as
// admin.key (the admin key would open /openai and the admin endpoints would
// refuse it), whether given plain or as key_sha256.
func checkKeyClashes(d *decoder, c *Config) {
	digest := func(k Key) string {
		if k.Key != "" {
			sum := sha256.Sum256([]byte(k.Key.Reveal()))
			return hex.EncodeToString(sum[:])
		}
		return strings.ToLower(k.KeySHA256)
	}
	var admin string
	if c.Admin.Key != "" {
		sum := sha256.Sum256([]byte(c.Admin.Key.Reveal()))
		admin = hex.EncodeToString(sum[:])
	}
	seen := make(map[string]int, len(c.Keys))
	for i, k := range c.Keys {
		h := digest(k)
		if h == "" {
			continue
		}
		field := "key"
		if k.Key == "" {
			field = "key_sha256"
		}
		p := fmt.Sprintf("keys[%d].%s", i, field)
		if h == admin {
			d.add(p, nil, "must differ from admin.key")
		}
		if j, dup := seen[h]; dup {
			d.add(p, nil, "the same key as keys[%d] (%s): each client needs its own", j, c.Keys[j].Name)
			continue
		}
		seen[h] = i
	}
}

// Bounds of a key's metadata.
const (
	maxMetaEntries  = 32
	maxMetaNameLen  = 64
	maxMetaValueLen = 256
)

// checkMetadata reports bad metadata of the key at path p: names that are
// not lower-case identifiers, oversized values, and a team or owner given
// both at the top level and under metadata with different values.
func checkMetadata(d *decoder, p string, k Key) {
	if len(k.Metadata) > maxMetaEntries {
		d.add(p+".metadata", nil, "at most %d entries", maxMetaEntries)
	}
	for _, n := range slices.Sorted(maps.Keys(k.Metadata)) {
		v := k.Metadata[n]
		if !metaName(n) {
			d.add(p+".metadata", nil, "invalid name %q: use lower case letters, digits and _, starting with a letter, at most %d bytes", n, maxMetaNameLen)
			continue
		}
		if len(v) > maxMetaValueLen || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			d.add(p+".metadata."+n, nil, "must be printable text of at most %d bytes", maxMetaValueLen)
		}
	}
	for _, f := range []struct{ name, top string }{{"team", k.Team}, {"owner", k.Owner}} {
		if v, ok := k.Metadata[f.name]; ok && f.top != "" && v != f.top {
			d.add(p+".metadata."+f.name, nil, "%q conflicts with %s.%s %q: give it once, at the top level or under metadata",
				v, p, f.name, f.top)
		}
	}
}

// metaName reports whether s is a lower-case identifier: [a-z][a-z0-9_]*.
func metaName(s string) bool {
	if s == "" || len(s) > maxMetaNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// validName reports whether s can be a deployment or model name: no
// slashes, no dot segments, no control characters, at most 256 bytes.
func validName(s string) bool {
	if s == "" || len(s) > 256 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == '/' || c == '\\' || c == '?' || c == '#' || c == '%' {
			return false
		}
	}
	return true
}

func fieldsTag(f reflect.StructField) string { return strings.Split(f.Tag.Get("yaml"), ",")[0] }

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// Error holds every problem of a config file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d problem(s)", e.File, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Load reads, expands, defaults and validates the config file at path.
// A problem of any kind returns *Error listing them all.
func Load(path string, checks ...Check) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, osLookup, checks...)
}

// Check is a check of a decoded config made outside this package (one that
// needs a package the config should not depend on, such as a store's URL
// parser). Its problems are reported with the config's own.
type Check func(*Config) []Problem

// Parse is Load on bytes, with lookup resolving ${NAME} references.
func Parse(name string, data []byte, lookup func(string) (string, bool), checks ...Check) (*Config, error) {
	var root yaml.Node
	data, placeholder := shieldEnvRefs(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Problems: []Problem{{Message: "file is empty"}}}
		}
		return nil, &Error{File: name, Problems: []Problem{{Message: err.Error()}}}
	}
	unshield(&root, placeholder)
	d := decoder{lookup: lookup, lines: map[string]int{}}
	c := &Config{}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d.decode(doc, reflect.ValueOf(c).Elem(), "")
	c.given = d.lines
	problems := d.problems
	bad := make(map[string]bool, len(problems))
	for _, p := range problems {
		bad[p.Path] = true
	}
	c.Defaults()
	// Validate even after decode problems, so one run lists them all; skip
	// findings about values that already failed to decode.
	found := c.Validate()
	for _, check := range checks {
		found = append(found, check(c)...)
	}
	for _, p := range found {
		if bad[p.Path] {
			continue
		}
		for q := p.Path; p.Line == 0 && q != ""; q = parent(q) {
			p.Line = d.lines[q]
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return nil, &Error{File: name, Problems: problems}
	}
	return c, nil
}

// set reports whether the file gave path a value (not null).
func (c *Config) set(path string) bool {
	_, ok := c.given[path]
	return ok
}

// Redacted returns the config as YAML with every secret masked.
func (c *Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(out)
}

// parent returns the path one level up: "backends[1].url" → "backends[1]" → "backends".
func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}
