// Package upstream keeps the live state of each backend: requests in flight
// and the time until which it asked not to be called. State is keyed by
// backend name and survives config reloads.
package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is one backend's live state. Safe for concurrent use; must not be copied.
type State struct {
	Name string

	inflight       atomic.Int64
	throttledUntil atomic.Int64 // unix nanoseconds; 0 = not throttled
}

// Available reports whether the backend may be called at now.
func (s *State) Available(now time.Time) bool {
	return s.throttledUntil.Load() <= now.UnixNano()
}

// ThrottledUntil returns the end of the current throttle, or the zero time.
func (s *State) ThrottledUntil() time.Time {
	n := s.throttledUntil.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Throttle marks the backend unavailable until t. An earlier t than the
// current throttle's end is ignored.
func (s *State) Throttle(t time.Time) {
	n := t.UnixNano()
	for {
		cur := s.throttledUntil.Load()
		if cur >= n || s.throttledUntil.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Begin counts a request in flight; the returned func ends it.
func (s *State) Begin() { s.inflight.Add(1) }

// End ends a request counted by Begin.
func (s *State) End() { s.inflight.Add(-1) }

// InFlight returns the number of requests in flight.
func (s *State) InFlight() int64 { return s.inflight.Load() }

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
		s = &State{Name: name}
		r.states[name] = s
	}
	return s
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
