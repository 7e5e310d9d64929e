package admin

import (
	"net/http"
	"time"

	"github.com/llmgate/llmgate/internal/metrics"
	"github.com/llmgate/llmgate/internal/upstream"
)

// Backend states as the status page and /admin/backends name them, most
// telling first when several hold.
const (
	StateAvailable  = "available"
	StateThrottled  = "throttled"    // cooling down after a 429 (Retry-After)
	StateCircuit    = "circuit_open" // the breaker is open
	StateHalfOpen   = "half_open"    // the breaker lets one probe through
	StateAtCapacity = "at_capacity"  // max_inflight reached
	StateAuthFailed = "auth_failed"  // the backend refused its credential
)

// BackendsReport is the body of GET /admin/backends.
type BackendsReport struct {
	Time time.Time `json:"time"`
	// RecentSeconds is the window of each backend's recent figures and
	// ShareSeconds that of the traffic split.
	RecentSeconds int             `json:"recent_seconds"`
	ShareSeconds  int             `json:"share_seconds"`
	Backends      []BackendReport `json:"backends"`
}

// BackendReport is one configured backend's state and figures.
type BackendReport struct {
	Name     string `json:"name"`
	Priority int    `json:"priority"`
	Weight   int    `json:"weight"`
	// State is one of the State constants; Available tells whether a
	// request could go to the backend now.
	State     string `json:"state"`
	Available bool   `json:"available"`
	// Circuit is closed, open or half_open.
	Circuit string `json:"circuit"`
	// ThrottledUntil is the end of the cool-down (absent when none) and
	// ThrottledForMS the time left of it.
	ThrottledUntil *time.Time `json:"throttled_until,omitempty"`
	ThrottledForMS int64      `json:"throttled_for_ms"`
	InFlight       int64      `json:"inflight"`
	MaxInflight    int64      `json:"max_inflight"`
	// LatencyMS is the moving average time to response headers.
	LatencyMS float64 `json:"latency_ms"`
	// RemainingTokens and RemainingRequests are what the backend last
	// reported left; -1 when unknown.
	RemainingTokens   int64 `json:"remaining_tokens"`
	RemainingRequests int64 `json:"remaining_requests"`
	// Requests, Failures and Throttles count attempts since start.
	Requests  int64 `json:"requests"`
	Failures  int64 `json:"failures"`
	Throttles int64 `json:"throttles"`
	// Recent covers the last RecentSeconds.
	Recent RecentReport `json:"recent"`
	// Share is the backend's fraction of the attempts of the last ShareSeconds.
	Share float64 `json:"share"`
}

// RecentReport is a backend's figures over the recent window.
type RecentReport struct {
	Attempts  int64   `json:"attempts"`
	Errors    int64   `json:"errors"`
	Throttles int64   `json:"throttles"`
	LatencyMS float64 `json:"latency_ms"`
}

// KeysReport is the body of GET /admin/keys.
type KeysReport struct {
	Time time.Time   `json:"time"`
	Keys []KeyReport `json:"keys"`
}

// KeyReport is one key's use since start: totals and per model. It names
// the key, never holds it.
type KeyReport struct {
	Name  string `json:"name"`
	Team  string `json:"team,omitempty"`
	Owner string `json:"owner,omitempty"`
	// Configured is false for a key removed by a reload that still has figures.
	Configured bool `json:"configured"`
	Usage
	Models []ModelUsage `json:"models"`
}

// Usage is a count of requests and tokens.
type Usage struct {
	Requests         int64 `json:"requests"`
	Errors           int64 `json:"errors"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// ModelUsage is a key's use of one model.
type ModelUsage struct {
	Model string `json:"model"`
	Usage
}

func (a *Admin) serveBackends(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Backends())
}

func (a *Admin) serveKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Keys())
}

// Backends reports every configured backend, in config order.
func (a *Admin) Backends() BackendsReport {
	now := a.now()
	cfg := a.opts.Config()
	out := BackendsReport{
		Time:          now.UTC(),
		RecentSeconds: int(metrics.RecentSpan / time.Second),
		ShareSeconds:  int(metrics.ShareSpan / time.Second),
		Backends:      make([]BackendReport, 0, len(cfg.Backends)),
	}
	states := map[string]*upstream.State{}
	if a.opts.Backends != nil {
		for _, s := range a.opts.Backends.All() {
			states[s.Name] = s
		}
	}
	var recent map[string]metrics.Recent
	if a.opts.Metrics != nil {
		recent = a.opts.Metrics.Recent()
	}
	for _, b := range cfg.Backends {
		r := BackendReport{
			Name: b.Name, Priority: b.Priority, Weight: b.EffectiveWeight(),
			State: StateAvailable, Available: true, Circuit: upstream.Closed.String(),
			MaxInflight: b.MaxInflight, RemainingTokens: -1, RemainingRequests: -1,
		}
		if s := states[b.Name]; s != nil {
			fillState(&r, s, now)
		}
		if x, ok := recent[b.Name]; ok {
			r.Recent = RecentReport{Attempts: x.Attempts, Errors: x.Errors, Throttles: x.Throttles, LatencyMS: ms(x.Latency)}
			r.Share = x.Share
		}
		out.Backends = append(out.Backends, r)
	}
	return out
}

func fillState(r *BackendReport, s *upstream.State, now time.Time) {
	r.Available = s.Available(now)
	circuit := s.Circuit(now)
	r.Circuit = circuit.String()
	if t := s.ThrottledUntil(); t.After(now) {
		tu := t.UTC()
		r.ThrottledUntil = &tu
		r.ThrottledForMS = t.Sub(now).Milliseconds()
	}
	r.InFlight = s.InFlight()
	r.LatencyMS = ms(s.Latency())
	r.RemainingTokens, r.RemainingRequests = s.Remaining(now)
	r.Requests, r.Failures, r.Throttles = s.Requests.Load(), s.Failures.Load(), s.Throttles.Load()
	switch {
	case s.AuthBroken() && r.ThrottledUntil != nil:
		r.State = StateAuthFailed
	case r.ThrottledUntil != nil:
		r.State = StateThrottled
	case circuit == upstream.Open:
		r.State = StateCircuit
	case circuit == upstream.HalfOpen:
		r.State = StateHalfOpen
	case !r.Available:
		r.State = StateAtCapacity
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Keys reports every configured key (in config order, with zero figures
// when unused), then keys no longer configured that have figures.
func (a *Admin) Keys() KeysReport {
	cfg := a.opts.Config()
	out := KeysReport{Time: a.now().UTC(), Keys: make([]KeyReport, 0, len(cfg.Keys))}
	index := map[string]int{}
	for _, k := range cfg.Keys {
		index[k.Name] = len(out.Keys)
		out.Keys = append(out.Keys, KeyReport{Name: k.Name, Team: k.Team, Owner: k.Owner, Configured: true, Models: []ModelUsage{}})
	}
	if a.opts.Metrics == nil {
		return out
	}
	for _, u := range a.opts.Metrics.KeyUsage() {
		i, ok := index[u.Key]
		if !ok {
			i = len(out.Keys)
			index[u.Key] = i
			out.Keys = append(out.Keys, KeyReport{Name: u.Key, Models: []ModelUsage{}})
		}
		k := &out.Keys[i]
		mu := Usage{Requests: u.Requests, Errors: u.Errors, PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
		k.Models = append(k.Models, ModelUsage{Model: u.Model, Usage: mu})
		k.Requests += mu.Requests
		k.Errors += mu.Errors
		k.PromptTokens += mu.PromptTokens
		k.CompletionTokens += mu.CompletionTokens
	}
	return out
}
