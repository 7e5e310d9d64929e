package ratelimit

import (
	"reflect"
	"testing"
	"time"
)

// TestBatcherStampsAddTime: usage is counted in the minute it was added in,
// however late the flush.
func TestBatcherStampsAddTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 10, 12, 0, 50, 0, time.UTC)
	m := NewMemory(func() time.Time { return now })
	b := NewBatcher(m)
	b.now = func() time.Time { return now }
	ctx := t.Context()
	b.Add(Usage{Key: "k", Model: "m", Backend: "b", Prompt: 1, Requests: 1})
	now = now.Add(20 * time.Second) // 12:01:10
	b.Add(Usage{Key: "k", Model: "m", Backend: "b", Prompt: 10, Requests: 1})
	now = now.Add(2 * time.Minute) // flushed at 12:03:10
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from time.Time
		want []Usage
	}{
		{time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC), []Usage{{Key: "k", Model: "m", Backend: "b", Prompt: 1, Requests: 1}}},
		{time.Date(2025, 6, 10, 12, 1, 0, 0, time.UTC), []Usage{{Key: "k", Model: "m", Backend: "b", Prompt: 10, Requests: 1}}},
		{time.Date(2025, 6, 10, 12, 3, 0, 0, time.UTC), []Usage{}},
	} {
		got, err := m.Query(ctx, tc.from, tc.from.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("minute %v: got %+v, want %+v", tc.from.Format("15:04"), got, tc.want)
		}
	}
}
