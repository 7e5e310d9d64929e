package balance

import (
	"math/rand/v2"
	"testing"
)

func TestPickSplit(t *testing.T) {
	t.Parallel()
	cands := []Candidate{{Weight: 75}, {Weight: 25}}
	r := rand.New(rand.NewPCG(1, 2))
	var hits [2]int
	const n = 100000
	for range n {
		i, ok := Pick(cands, 0, r.Uint64())
		if !ok {
			t.Fatal("no pick")
		}
		hits[i]++
	}
	if share := float64(hits[0]) / n; share < 0.74 || share > 0.76 {
		t.Errorf("share of first = %.3f, want 0.75±0.01", share)
	}
}

func TestPickSkipRenormalises(t *testing.T) {
	t.Parallel()
	cands := []Candidate{{Weight: 50}, {Weight: 30}, {Weight: 10}}
	r := rand.New(rand.NewPCG(3, 4))
	var hits [3]int
	const n = 40000
	for range n {
		i, _ := Pick(cands, Set(0).With(0), r.Uint64())
		hits[i]++
	}
	if hits[0] != 0 {
		t.Fatalf("skipped candidate picked %d times", hits[0])
	}
	if share := float64(hits[1]) / n; share < 0.73 || share > 0.77 {
		t.Errorf("share of 30 among 30+10 = %.3f, want 0.75", share)
	}
}

func TestPickPriorityAndZeroWeights(t *testing.T) {
	t.Parallel()
	cands := []Candidate{{Weight: 1, Priority: 2}, {Weight: 0, Priority: 1}, {Weight: 0, Priority: 1}}
	seen := map[int]bool{}
	for r := range uint64(10) {
		i, ok := Pick(cands, 0, r*0x9E3779B97F4A7C15)
		if !ok || i == 0 {
			t.Fatalf("Pick = %d, %v; want a priority-1 candidate", i, ok)
		}
		seen[i] = true
	}
	if len(seen) != 2 {
		t.Errorf("zero-weight group not drawn uniformly: %v", seen)
	}
	if i, ok := Pick(cands, Set(0).With(1).With(2), 7); !ok || i != 0 {
		t.Errorf("spill-over: Pick = %d, %v; want 0", i, ok)
	}
	if _, ok := Pick(cands, ^Set(0), 7); ok {
		t.Error("all skipped: want ok=false")
	}
}

func TestPickLeast(t *testing.T) {
	t.Parallel()
	cands := []Candidate{{Weight: 1}, {Weight: 2}, {Weight: 1, Priority: 2}}
	if i, _ := PickLeast(cands, []float64{1, 1, 0}, 0, 0); i != 1 {
		t.Errorf("PickLeast = %d, want 1 (half the load per weight)", i)
	}
	if i, _ := PickLeast(cands, []float64{1, 1, 0}, Set(0).With(0).With(1), 0); i != 2 {
		t.Errorf("PickLeast spill-over = %d, want 2", i)
	}
	seen := map[int]bool{}
	for r := range uint64(16) {
		i, _ := PickLeast(cands[:2], []float64{1, 2}, 0, r)
		seen[i] = true
	}
	if len(seen) != 2 {
		t.Errorf("ties not broken at random: %v", seen)
	}
}

func BenchmarkPick(b *testing.B) {
	cands := []Candidate{{Weight: 75}, {Weight: 25}, {Weight: 10, Priority: 2}}
	var r uint64 = 12345
	b.ReportAllocs()
	for b.Loop() {
		r = r*6364136223846793005 + 1442695040888963407
		Pick(cands, Set(0).With(1), r>>1)
	}
}

// TestPickAllocBudget: selection allocates nothing.
func TestPickAllocBudget(t *testing.T) {
	cands := []Candidate{{Weight: 75}, {Weight: 25}, {Weight: 10, Priority: 2}}
	load := []float64{1, 2, 3}
	allocs := testing.AllocsPerRun(1000, func() {
		Pick(cands, Set(0).With(1), 12345)
		PickLeast(cands, load, 0, 6789)
	})
	if allocs != 0 {
		t.Errorf("Pick allocated %.1f times, budget 0", allocs)
	}
}
