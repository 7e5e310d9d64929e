package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func (m *Memory) keyCount() (keys, entries int) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		keys += len(sh.keys)
		for _, st := range sh.keys {
			entries += len(st.log)
		}
		sh.mu.Unlock()
	}
	return keys, entries
}

func TestMemoryBounded(t *testing.T) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	m := NewMemory(func() time.Time { return now })
	ctx := t.Context()
	windowed := Limits{RPM: 1000, Window: time.Second}
	quota := Limits{DailyTokens: 1000}

	for i := range 500 {
		for _, l := range []Limits{windowed, quota} {
			if _, err := m.Admit(ctx, fmt.Sprintf("%v-%d", l.Windowed(), i), l, 1); err != nil {
				t.Fatalf("Admit: %v", err)
			}
		}
	}
	// One key called 1000 times keeps only its window's entries.
	for range 1000 {
		now = now.Add(10 * time.Millisecond)
		if _, err := m.Admit(ctx, "busy", windowed, 1); err != nil {
			t.Fatalf("Admit: %v", err)
		}
	}
	if keys, entries := m.keyCount(); keys != 1001 || entries != 600 {
		t.Fatalf("before the sweep: got %d keys, %d entries, want 1001, 600", keys, entries)
	}

	const probes = memShards * 32 // enough keys to reach every shard
	// Past the window, a sweep frees the windowed keys; the quota keys live
	// until their day ends.
	now = now.Add(memSweepEvery)
	for i := range probes {
		if _, err := m.Admit(ctx, fmt.Sprintf("probe-%d", i), Limits{RPM: 1, Window: time.Millisecond}, 1); err != nil {
			t.Fatalf("Admit: %v", err)
		}
	}
	if keys, _ := m.keyCount(); keys != 500+probes {
		t.Fatalf("after the first sweep: got %d keys, want %d", keys, 500+probes)
	}
	now = now.Add(24 * time.Hour)
	for i := range probes {
		if _, err := m.Admit(ctx, fmt.Sprintf("probe-%d", i), Limits{RPM: 1, Window: time.Millisecond}, 0); err != nil {
			t.Fatalf("Admit: %v", err)
		}
	}
	if keys, _ := m.keyCount(); keys != probes {
		t.Fatalf("after the day: got %d keys, want only the %d probes", keys, probes)
	}
}

func TestPeriods(t *testing.T) {
	tests := []struct {
		at               time.Time
		dayEnd, monthEnd time.Time
		dayNum, monthNum int64
	}{
		{time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), 19782, 2024*12 + 1},
		{time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 20453, 2025*12 + 11},
		{time.Date(2025, 12, 31, 1, 0, 0, 0, time.FixedZone("x", 2*3600)), time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 20452, 2025*12 + 11},
	}
	for _, tc := range tests {
		day, dayEnd, month, monthEnd := periods(tc.at)
		if day != tc.dayNum || !dayEnd.Equal(tc.dayEnd) || month != tc.monthNum || !monthEnd.Equal(tc.monthEnd) {
			t.Errorf("periods(%v): got %d %v %d %v, want %d %v %d %v", tc.at, day, dayEnd, month, monthEnd, tc.dayNum, tc.dayEnd, tc.monthNum, tc.monthEnd)
		}
	}
}
