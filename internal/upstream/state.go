// Package upstream keeps the live state of each backend: requests in
// flight, the time until which it asked not to be called, its circuit
// breaker, the capacity it reported and its recent latency. State is keyed
// by backend name and survives config reloads.
package upstream

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Settings are a backend's operator-set limits. Zero fields take the
// defaults documented on each.
type Settings struct {
	// MaxInflight caps concurrent requests to the backend. Zero: no cap.
	MaxInflight int64
	// TPM and RPM are the backend's declared capacity per minute, used to
	// steer traffic before it runs out. Zero: unknown (headers alone steer).
	TPM, RPM int64
	Circuit  Circuit
	// SlowStart is how long a recovered backend takes to ramp back to its
	// full weight. Zero: 10s. Negative: no ramp.
	SlowStart time.Duration
	// AuthCooldown is how long a backend whose credential was refused (401,
	// 403) is left alone. Zero: 60s.
	AuthCooldown time.Duration
}

// Circuit configures the breaker. Zero fields take the defaults.
type Circuit struct {
	// Failures opens the circuit after this many consecutive failures. Zero: 5; negative: off.
	Failures int
	// Ratio opens the circuit when failures / attempts within Window reaches
	// it, once MinRequests attempts were seen. Zero: 0.5; negative: off.
	Ratio float64
	// Window is the span of the ratio. Zero: 10s.
	Window time.Duration
	// MinRequests is the fewest attempts in Window for Ratio to apply. Zero: 20.
	MinRequests int
	// Cooldown is how long the circuit stays open before one probe. Zero: 10s.
	Cooldown time.Duration
}

func (s Settings) withDefaults() Settings {
	c := &s.Circuit
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.Ratio == 0 {
		c.Ratio = 0.5
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 10 * time.Second
	}
	if s.SlowStart == 0 {
		s.SlowStart = 10 * time.Second
	}
	if s.AuthCooldown <= 0 {
		s.AuthCooldown = 60 * time.Second
	}
	return s
}

// Outcome is what an attempt told us about the backend's health.
type Outcome uint8

const (
	// OK: the backend answered (2xx, or a client's own fault such as a 400).
	OK Outcome = iota
	// Failed: 5xx, connection failure, timeout, broken stream.
	Failed
	// Throttled: 429; a cool-down, not a health penalty.
	Throttled
	// AuthFailed: 401/403; the backend's credential is broken.
	AuthFailed
	// Abandoned: the client went away; says nothing about the backend.
	Abandoned
)

// CircuitState is the breaker's state.
type CircuitState uint8

const (
	Closed CircuitState = iota
	Open
	HalfOpen
)

func (c CircuitState) String() string {
	return [...]string{"closed", "open", "half_open"}[c]
}

// Transition reports a change of circuit state, for logging.
type Transition struct {
	Backend  string
	From, To CircuitState
	Reason   string
	// Until is when an opened circuit takes a probe (To == Open).
	Until time.Time
	// Remote: another replica opened the circuit (OpenCircuit).
	Remote bool
}

// State is one backend's live state. Safe for concurrent use; must not be copied.
type State struct {
	Name string

	settings atomic.Pointer[Settings]

	inflight       atomic.Int64
	throttledUntil atomic.Int64 // unix ns; 0 = not throttled
	openUntil      atomic.Int64 // unix ns; 0 = circuit closed
	probing        atomic.Bool  // a half-open probe is in flight
	recoveredAt    atomic.Int64 // unix ns of the last close after open; 0 = never
	authBroken     atomic.Bool
	consecutive    atomic.Int64
	latencyEWMA    atomic.Int64 // ns; 0 = no sample

	// Counters since start, for status and metrics.
	Requests, Failures, Throttles atomic.Int64

	cap capacity

	mu     sync.Mutex // guards window
	window ratioWindow
}

// NewState returns the state of a backend named name.
func NewState(name string) *State {
	s := &State{Name: name}
	s.Configure(Settings{})
	s.cap.init()
	return s
}

// Configure installs new settings (on start and on reload).
func (s *State) Configure(set Settings) {
	set = set.withDefaults()
	s.settings.Store(&set)
}

// Settings returns the settings in force.
func (s *State) Settings() Settings { return *s.settings.Load() }

// Available reports whether the backend may be picked at now: not cooling
// down, circuit closed (or open with its cool-down over and no probe in
// flight), and below its concurrency cap.
func (s *State) Available(now time.Time) bool {
	n := now.UnixNano()
	if s.throttledUntil.Load() > n {
		return false
	}
	if ou := s.openUntil.Load(); ou != 0 && (ou > n || s.probing.Load()) {
		return false
	}
	if m := s.settings.Load().MaxInflight; m > 0 && s.inflight.Load() >= m {
		return false
	}
	return true
}

// OnlyCircuitOpen reports whether the backend's open circuit is the only
// reason it is unavailable at now.
func (s *State) OnlyCircuitOpen(now time.Time) bool {
	n := now.UnixNano()
	if s.throttledUntil.Load() > n || s.openUntil.Load() == 0 {
		return false
	}
	if m := s.settings.Load().MaxInflight; m > 0 && s.inflight.Load() >= m {
		return false
	}
	return true
}

// ReadyAt returns when the backend stops cooling down or its circuit may
// take a probe, whichever is later; the zero time if it is ready now.
func (s *State) ReadyAt() time.Time {
	t := max(s.throttledUntil.Load(), s.openUntil.Load())
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(0, t)
}

// ThrottledUntil returns the end of the current cool-down, or the zero time.
func (s *State) ThrottledUntil() time.Time {
	n := s.throttledUntil.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Throttle marks the backend unavailable until t. An earlier t than the
// current cool-down's end is ignored.
func (s *State) Throttle(t time.Time) {
	n := t.UnixNano()
	for {
		cur := s.throttledUntil.Load()
		if cur >= n || s.throttledUntil.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Acquire claims a slot for an attempt at now. probe reports that the
// attempt is the circuit's half-open probe. ok is false when the backend is
// no longer available (another request took the last slot or the probe).
func (s *State) Acquire(now time.Time) (probe, ok bool) {
	return s.acquire(now, false)
}

// AcquirePanic is Acquire that ignores an open circuit: when every backend
// of a route has its circuit open, the gateway tries them all the same
// rather than failing every request (Envoy's panic mode).
func (s *State) AcquirePanic(now time.Time) (probe, ok bool) {
	return s.acquire(now, true)
}

func (s *State) acquire(now time.Time, ignoreCircuit bool) (probe, ok bool) {
	n := now.UnixNano()
	if ou := s.openUntil.Load(); ou != 0 && !ignoreCircuit {
		if ou > n || !s.probing.CompareAndSwap(false, true) {
			return false, false
		}
		probe = true
	}
	if m := s.settings.Load().MaxInflight; m > 0 {
		for {
			cur := s.inflight.Load()
			if cur >= m {
				if probe {
					s.probing.Store(false)
				}
				return false, false
			}
			if s.inflight.CompareAndSwap(cur, cur+1) {
				break
			}
		}
	} else {
		s.inflight.Add(1)
	}
	s.Requests.Add(1)
	return probe, true
}

// Done ends an attempt taken with Acquire and feeds its outcome back. It
// returns the circuit transition it caused, if any (ok=false otherwise).
func (s *State) Done(now time.Time, o Outcome, latency time.Duration, probe bool) (Transition, bool) {
	s.inflight.Add(-1)
	set := s.settings.Load()
	switch o {
	case OK:
		s.observeLatency(latency)
		s.consecutive.Store(0)
		s.authBroken.Store(false)
	case Failed:
		s.Failures.Add(1)
		s.consecutive.Add(1)
	case Throttled:
		s.Throttles.Add(1)
	case AuthFailed:
		s.Failures.Add(1)
		s.authBroken.Store(true)
		s.Throttle(now.Add(set.AuthCooldown))
	}
	if o == Abandoned {
		if probe {
			s.probing.Store(false)
		}
		return Transition{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window.add(now, set.Circuit.Window, o == Failed)
	if probe {
		s.probing.Store(false)
		if o == Failed || o == AuthFailed {
			until := now.Add(set.Circuit.Cooldown)
			s.openUntil.Store(until.UnixNano())
			return Transition{Backend: s.Name, From: HalfOpen, To: Open, Reason: "probe failed", Until: until}, true
		}
		s.openUntil.Store(0)
		s.consecutive.Store(0)
		s.window.reset()
		s.recoveredAt.Store(now.UnixNano())
		return Transition{Backend: s.Name, From: HalfOpen, To: Closed, Reason: "probe succeeded"}, true
	}
	if o != Failed || s.openUntil.Load() != 0 {
		return Transition{}, false
	}
	c := set.Circuit
	reason := ""
	if c.Failures > 0 && s.consecutive.Load() >= int64(c.Failures) {
		reason = "consecutive failures"
	} else if c.Ratio > 0 {
		ok, fail := s.window.sum(now, c.Window)
		if ok+fail >= int64(c.MinRequests) && float64(fail) >= c.Ratio*float64(ok+fail) {
			reason = "failure ratio"
		}
	}
	if reason == "" {
		return Transition{}, false
	}
	until := now.Add(c.Cooldown)
	s.openUntil.Store(until.UnixNano())
	return Transition{Backend: s.Name, From: Closed, To: Open, Reason: reason, Until: until}, true
}

// OpenCircuit opens the circuit until until because another replica's
// opened (shared through the state store), so that replicas route around a
// failing backend together; after until, one probe decides as usual. A
// circuit already open keeps the later end unless its probe is in flight;
// an until already past is ignored.
func (s *State) OpenCircuit(now, until time.Time) (Transition, bool) {
	u := until.UnixNano()
	if u <= now.UnixNano() {
		return Transition{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.openUntil.Load()
	if cur != 0 {
		if u > cur && !s.probing.Load() {
			s.openUntil.Store(u)
		}
		return Transition{}, false
	}
	s.openUntil.Store(u)
	return Transition{Backend: s.Name, From: Closed, To: Open, Reason: "opened by another replica", Until: until, Remote: true}, true
}

// Report feeds an active health check's result back: a failure counts like
// a failed attempt; a success when the circuit's cool-down is over acts as
// its probe and closes it.
func (s *State) Report(now time.Time, healthy bool) (Transition, bool) {
	ou := s.openUntil.Load()
	probe := ou != 0 && ou <= now.UnixNano() && s.probing.CompareAndSwap(false, true)
	s.inflight.Add(1) // Done ends it
	o := OK
	if !healthy {
		o = Failed
	}
	return s.Done(now, o, 0, probe)
}

// Circuit returns the breaker's state at now.
func (s *State) Circuit(now time.Time) CircuitState {
	ou := s.openUntil.Load()
	switch {
	case ou == 0:
		return Closed
	case ou > now.UnixNano() && !s.probing.Load():
		return Open
	case s.probing.Load():
		return HalfOpen
	default:
		return HalfOpen
	}
}

// Ramp is the slow-start factor in (0, 1] after a recovery.
func (s *State) Ramp(now time.Time) float64 {
	ra := s.recoveredAt.Load()
	ss := s.settings.Load().SlowStart
	if ra == 0 || ss <= 0 {
		return 1
	}
	el := now.UnixNano() - ra
	if el >= int64(ss) {
		return 1
	}
	return math.Max(0.05, float64(el)/float64(ss))
}

func (s *State) observeLatency(d time.Duration) {
	if d <= 0 {
		return
	}
	for {
		cur := s.latencyEWMA.Load()
		next := int64(d)
		if cur != 0 {
			next = cur + (int64(d)-cur)/8
		}
		if s.latencyEWMA.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Latency returns the moving average of successful attempts' latency (0 if none).
func (s *State) Latency() time.Duration { return time.Duration(s.latencyEWMA.Load()) }

// InFlight returns the number of attempts in flight.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// AuthBroken reports whether the backend's credential was last refused.
func (s *State) AuthBroken() bool { return s.authBroken.Load() }

// ratioWindow counts outcomes in 10 buckets spanning the window.
type ratioWindow struct {
	start    [10]int64 // bucket start, unix ns
	ok, fail [10]int64
}

func (w *ratioWindow) add(now time.Time, span time.Duration, failed bool) {
	width := int64(span) / 10
	if width <= 0 {
		width = 1
	}
	n := now.UnixNano()
	b := n / width
	i := int(b % 10)
	if w.start[i] != b*width {
		w.start[i], w.ok[i], w.fail[i] = b*width, 0, 0
	}
	if failed {
		w.fail[i]++
	} else {
		w.ok[i]++
	}
}

func (w *ratioWindow) sum(now time.Time, span time.Duration) (ok, fail int64) {
	from := now.UnixNano() - int64(span)
	for i := range w.start {
		if w.start[i] > from {
			ok += w.ok[i]
			fail += w.fail[i]
		}
	}
	return ok, fail
}

func (w *ratioWindow) reset() { *w = ratioWindow{} }

// Registry holds the State of every backend by name. Safe for concurrent use.
type Registry struct {
	mu     sync.Mutex // guards states
	states map[string]*State
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{states: map[string]*State{}} }

// Get returns the state for name, creating it if needed.
func (r *Registry) Get(name string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[name]
	if !ok {
		s = NewState(name)
		r.states[name] = s
	}
	return s
}

// Lookup returns the state for name, or nil.
func (r *Registry) Lookup(name string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[name]
}

// All returns every state, in no particular order.
func (r *Registry) All() []*State {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*State, 0, len(r.states))
	for _, s := range r.states {
		out = append(out, s)
	}
	return out
}

// Retain drops the states of backends not in names.
func (r *Registry) Retain(names map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := range r.states {
		if !names[n] {
			delete(r.states, n)
		}
	}
}
