package retry

import (
	"testing"
	"time"
)

func TestBackoffWait(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	mid := func() float64 { return 0.5 } // jitter factor 1.0
	low := func() float64 { return 0 }   // jitter factor 0.8
	tests := []struct {
		name string
		b    Backoff
		rnd  func() float64
		want []time.Duration // waits for n = 1, 2, ...
	}{
		{"fixed", Backoff{Interval: 10 * ms}, mid, []time.Duration{10 * ms, 10 * ms, 10 * ms}},
		{"linear", Backoff{Interval: 10 * ms, Delta: 5 * ms}, mid, []time.Duration{10 * ms, 15 * ms, 20 * ms, 25 * ms}},
		{"exponential", Backoff{Interval: 10 * ms, Delta: 10 * ms, MaxInterval: 80 * ms}, mid,
			[]time.Duration{20 * ms, 30 * ms, 50 * ms, 80 * ms, 80 * ms}},
		{"exponential low jitter", Backoff{Interval: 10 * ms, Delta: 10 * ms, MaxInterval: 80 * ms}, low,
			[]time.Duration{18 * ms, 26 * ms, 42 * ms, 74 * ms, 80 * ms}},
		{"first fast", Backoff{Interval: 10 * ms, Delta: 10 * ms, MaxInterval: 80 * ms, FirstFastRetry: true}, mid,
			[]time.Duration{0, 30 * ms, 50 * ms}},
		{"linear capped", Backoff{Interval: 10 * ms, Delta: 50 * ms, MaxInterval: 0}, mid, []time.Duration{10 * ms, 60 * ms}},
		{"apim defaults", Backoff{Interval: time.Second, Delta: time.Second, MaxInterval: 8 * time.Second}, mid,
			[]time.Duration{2 * time.Second, 3 * time.Second, 5 * time.Second, 8 * time.Second, 8 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, want := range tt.want {
				if got := tt.b.Wait(i+1, tt.rnd); got != want {
					t.Errorf("Wait(%d) = %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	t.Parallel()
	b := Backoff{Interval: 100 * time.Millisecond, Delta: 100 * time.Millisecond, MaxInterval: time.Hour}
	for n := 1; n <= 6; n++ {
		base := time.Duration(1<<(n-1)) * 100 * time.Millisecond
		lo, hi := 100*time.Millisecond+base*8/10, 100*time.Millisecond+base*12/10
		for _, r := range []float64{0, 0.25, 0.5, 0.999} {
			got := b.Wait(n, func() float64 { return r })
			if got < lo || got > hi {
				t.Errorf("Wait(%d, r=%v) = %v, want in [%v, %v]", n, r, got, lo, hi)
			}
		}
	}
	if got := b.Wait(0, nil); got != 0 {
		t.Errorf("Wait(0) = %v, want 0", got)
	}
	if got := b.Wait(200, func() float64 { return 0.5 }); got != time.Hour {
		t.Errorf("Wait(200) = %v, want the cap", got)
	}
}
