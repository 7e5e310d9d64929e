package proxy

import (
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/balance"
	"github.com/llmgate/llmgate/internal/upstream"
)

func testConfig(n int) (*Config, *Route) {
	cfg := &Config{Steering: true, MaxWait: time.Second}
	rt := &Route{Name: "m"}
	for i := range n {
		cfg.Backends = append(cfg.Backends, Backend{Name: "b" + string(rune('a'+i)), State: upstream.NewState("b"), Weight: float64(i + 1), Priority: 1})
		rt.Members = append(rt.Members, Member{Backend: i})
	}
	return cfg, rt
}

// TestChooseAllocBudget: choosing a backend (availability, steering, tiers,
// weighted draw) allocates nothing.
func TestChooseAllocBudget(t *testing.T) {
	cfg, rt := testConfig(3)
	h := New(Options{}, cfg)
	q := &request{estimate: 100}
	now := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		c := h.choose(cfg, rt, q, balance.Set(0).With(1), 1, 1, now, "")
		if c.member < 0 {
			t.Fatal("no choice")
		}
	})
	if allocs != 0 {
		t.Errorf("choose allocated %.1f times, budget 0", allocs)
	}
}

func BenchmarkChoose(b *testing.B) {
	cfg, rt := testConfig(3)
	h := New(Options{}, cfg)
	q := &request{estimate: 100}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		h.choose(cfg, rt, q, 0, -1, 0, now, "")
	}
}
