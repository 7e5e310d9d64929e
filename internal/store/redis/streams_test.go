package redis

import (
	"context"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

// TestStreamSlots: two stores on one Redis share a key's stream slots; a
// slot given back, or whose lease runs out without renewal, frees; a
// renewed one holds.
func TestStreamSlots(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.URL(), "st:"), newStore(t, srv.URL(), "st:")
	ctx := context.Background()
	open := func(s *Store, lease time.Duration) (string, bool) {
		t.Helper()
		id, ok, err := s.OpenStream(ctx, "team", 2, lease)
		if err != nil {
			t.Fatalf("OpenStream: %v", err)
		}
		return id, ok
	}
	id1, ok1 := open(a, time.Minute)
	_, ok2 := open(b, time.Minute)
	if _, ok3 := open(a, time.Minute); !ok1 || !ok2 || ok3 {
		t.Fatalf("slots: %v %v %v, want two taken (one per store) and the third refused", ok1, ok2, ok3)
	}
	if _, ok, _ := b.OpenStream(ctx, "other", 2, time.Minute); !ok {
		t.Fatal("another key's slot refused")
	}
	if err := a.CloseStream(ctx, "team", id1); err != nil {
		t.Fatal(err)
	}
	if _, ok := open(b, 200*time.Millisecond); !ok {
		t.Fatal("a slot given back is not free")
	}
	// The short lease runs out unrenewed: its slot frees itself.
	time.Sleep(300 * time.Millisecond)
	id, ok := open(a, time.Second)
	if !ok {
		t.Fatal("an expired lease still holds its slot")
	}
	// Renewed, it holds past its first lease.
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		if err := a.RenewStream(ctx, "team", id, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := open(b, time.Minute); ok {
		t.Fatal("a renewed slot was taken over")
	}
	// A lease that ran out (Redis unreachable longer than it) is taken
	// again by the renewal of its running stream.
	id2, _, _ := a.OpenStream(ctx, "solo", 1, 100*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	if err := a.RenewStream(ctx, "solo", id2, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.OpenStream(ctx, "solo", 1, time.Minute); ok {
		t.Error("a renewed stream's slot, whose lease had run out, was given to another")
	}
	if _, _, err := a.OpenStream(ctx, "team", 0, time.Minute); err == nil {
		t.Error("OpenStream with max 0: no error")
	}
}
