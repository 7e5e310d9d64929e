package upstream

import (
	"testing"
	"time"
)

// A circuit another replica opened keeps this replica's backend out of
// rotation until its end, then takes one probe like any open circuit; it
// never shortens a circuit open here, and a time already past is ignored.
func TestOpenCircuitFromAnotherReplica(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	s := NewState("b")
	if _, changed := s.OpenCircuit(now, now.Add(-time.Second)); changed || !s.Available(now) {
		t.Fatal("a past opening changed the circuit")
	}
	until := now.Add(10 * time.Second)
	tr, changed := s.OpenCircuit(now, until)
	if !changed || tr.From != Closed || tr.To != Open || !tr.Remote || !tr.Until.Equal(until) || tr.Backend != "b" {
		t.Fatalf("got %+v, %v; want a remote closed→open transition until %v", tr, changed, until)
	}
	if s.Available(now.Add(9*time.Second)) || s.Circuit(now) != Open {
		t.Fatal("backend available while the shared circuit is open")
	}
	if _, changed := s.OpenCircuit(now, now.Add(5*time.Second)); changed || !s.ReadyAt().Equal(until) {
		t.Fatalf("an earlier end changed the circuit: ready at %v, want %v", s.ReadyAt(), until)
	}
	later := until.Add(5 * time.Second)
	if _, changed := s.OpenCircuit(now, later); changed || !s.ReadyAt().Equal(later) {
		t.Fatalf("a later end: ready at %v, want %v (no second transition)", s.ReadyAt(), later)
	}
	probe, ok := s.Acquire(later)
	if !probe || !ok {
		t.Fatalf("after the cool-down: probe %v, ok %v; want the one probe", probe, ok)
	}
	if _, ok := s.Acquire(later); ok {
		t.Fatal("a second request went out while the probe was in flight")
	}
	if tr, changed := s.Done(later, OK, time.Millisecond, true); !changed || tr.To != Closed {
		t.Fatalf("probe succeeded: %+v, %v; want closed", tr, changed)
	}
}

// An opening made here says until when, for the other replicas.
func TestOpeningSaysUntilWhen(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	s := NewState("b")
	s.Configure(Settings{Circuit: Circuit{Failures: 2, Cooldown: 3 * time.Second}})
	for i := range 2 {
		s.Acquire(now)
		tr, changed := s.Done(now, Failed, time.Millisecond, false)
		if i == 1 && (!changed || tr.To != Open || tr.Remote || !tr.Until.Equal(now.Add(3*time.Second))) {
			t.Fatalf("got %+v, %v; want open until %v", tr, changed, now.Add(3*time.Second))
		}
	}
}
