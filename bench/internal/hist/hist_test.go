package hist

import (
	"testing"
	"time"
)

func TestIndexIsMonotonicAndContiguous(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1 << 20, 1<<40 + 12345, 1<<62 + 1, 1<<63 - 1} {
		i := index(v)
		if i < prev {
			t.Fatalf("index(%d) = %d, want >= %d", v, i, prev)
		}
		if i >= buckets {
			t.Fatalf("index(%d) = %d, want < %d", v, i, buckets)
		}
		if lo := lowest(i); lo > v {
			t.Fatalf("lowest(index(%d)) = %d, want <= %d", v, lo, v)
		}
		prev = i
	}
	for i := 1; i < 40*subN; i++ {
		if index(lowest(i)) != i {
			t.Fatalf("index(lowest(%d)) = %d, want %d", i, index(lowest(i)), i)
		}
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	var h H
	if got := h.Quantile(0.5); got != 0 {
		t.Fatalf("empty: got %v, want 0", got)
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	cases := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"p50", 0.50, 500 * time.Microsecond},
		{"p99", 0.99, 990 * time.Microsecond},
		{"p100", 1, 1000 * time.Microsecond},
	}
	for _, c := range cases {
		got := h.Quantile(c.q)
		if d := got - c.want; d < -c.want/100 || d > c.want/100 {
			t.Errorf("%s: got %v, want %v within 1%%", c.name, got, c.want)
		}
	}
	if h.Max() != time.Millisecond || h.Count() != 1000 {
		t.Errorf("got max %v count %d, want 1ms and 1000", h.Max(), h.Count())
	}
}
