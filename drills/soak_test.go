package drills

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/sim"
)

// sample is one reading of the process's memory and goroutines, taken
// after a forced GC.
type sample struct {
	at         time.Duration
	heapInuse  uint64
	heapAlloc  uint64
	goroutines int
	requests   int64
}

func takeSample(start time.Time, requests int64) sample {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return sample{at: time.Since(start), heapInuse: m.HeapInuse, heapAlloc: m.HeapAlloc,
		goroutines: runtime.NumGoroutine(), requests: requests}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// soakFaults are the faults the flaky backend cycles through, one phase each.
var soakFaults = []struct {
	name   string
	faults sim.Faults
	outage bool
}{
	{name: "none"},
	{name: "429 30% (retry-after 200ms)", faults: sim.Faults{Fail429: 0.3, RetryAfter429: 200 * time.Millisecond}},
	{name: "500/503 30%", faults: sim.Faults{Fail500: 0.2, Fail503: 0.1}},
	{name: "stream cut 10%", faults: sim.Faults{StreamCut: 0.1}},
	{name: "reset 10%", faults: sim.Faults{Reset: 0.1}},
	{name: "hang 10%", faults: sim.Faults{Hang: 0.1}},
	{name: "error event 30%", faults: sim.Faults{ErrorEvent: 0.3}},
	{name: "slow headers 30% (+50ms)", faults: sim.Faults{SlowHeaders: 0.3, SlowHeadersDelay: 50 * time.Millisecond}},
	{name: "outage", outage: true},
}

// TestDrillSoak: steady mixed load (plain, streaming, embeddings,
// multipart) through the gateway for a bounded time (20 s short, 3 min
// long) while one of two backends switches faults on and off. Heap in use
// and goroutines, sampled after GC every few seconds, stay flat after
// warm-up (end within +25 % plus a small absolute slack of the after-warm-up
// sample); every request gets exactly one answer or one clear error; and
// once the load stops the goroutines fall back.
func TestDrillSoak(t *testing.T) {
	duration, every, phase := 20*time.Second, 2*time.Second, 2*time.Second
	if long() {
		duration, every, phase = 3*time.Minute, 10*time.Second, 5*time.Second
	}
	warmup := duration / 4
	const (
		heapSlack      = 4 << 20
		goroutineSlack = 40
		stoppedSlack   = 5
	)

	base := takeSample(time.Now(), 0)
	a := newSim(t, "a", simOptions("a"))
	b := newSim(t, "b", simOptions("b"))
	a.noArrivals, b.noArrivals = true, true
	g := startGatewayLog(t, context.Background(), drillConfig(t, []backendSpec{be(a), be(b)},
		map[string]any{"timeouts.response_header": "300ms"}), &logBuffer{discard: true})
	c := newClient(t, g.url)

	stop := make(chan struct{})
	var done atomic.Int64
	var wg sync.WaitGroup
	// Faults on and off.
	phases := 0
	wg.Go(func() {
		tick := time.NewTicker(phase)
		defer tick.Stop()
		for i := 0; ; i++ {
			p := soakFaults[i%len(soakFaults)]
			a.sim.SetFaults(p.faults)
			if p.outage {
				a.sim.StartOutage(phase / 2)
			}
			phases++
			select {
			case <-stop:
				a.sim.SetFaults(sim.Faults{})
				return
			case <-tick.C:
			}
		}
	})
	// Load, summed up as it goes: nothing per request is kept but the
	// first failures, so the samples measure the gateway, not the drill.
	f := newFigures(t.Name())
	f.clientLat.add(0) // allocate the sample buffer now, not while measuring
	f.clientLat = samples{buf: f.clientLat.buf[:0]}
	var fmu sync.Mutex // guards f and failed
	var failed []result
	var next atomic.Int64
	for range concurrency {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1) - 1)
				r := c.do(mixed(i), i)
				done.Add(1)
				fmu.Lock()
				f.add(r)
				if r.out != okAnswer && len(failed) < 50 {
					failed = append(failed, r)
				}
				fmu.Unlock()
			}
		})
	}
	// Samples.
	start := time.Now()
	var samples []sample
	tick := time.NewTicker(every)
	for time.Since(start) < duration {
		<-tick.C
		samples = append(samples, takeSample(start, done.Load()))
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	f.finish(elapsed, a, b)
	f.report(t)
	rs := failed

	// Quiet: the load gone, the clients' idle connections closed.
	c.tr.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	quiet := takeSample(start, done.Load())
	// Stopped: the gateway drained and stopped, the backends closed. Every
	// goroutine the soak started must be gone.
	if err := g.stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	a.close()
	b.close()
	var stopped sample
	for range 100 {
		stopped = takeSample(start, done.Load())
		if stopped.goroutines <= base.goroutines+stoppedSlack {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	var warm sample
	for _, s := range samples {
		if s.at >= warmup {
			warm = s
			break
		}
	}
	end := samples[len(samples)-1]
	var curve strings.Builder
	fmt.Fprintf(&curve, "| t | requests | heap in use MiB | heap alloc MiB | goroutines |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&curve, "| before | 0 | %s | %s | %d |\n", mib(base.heapInuse), mib(base.heapAlloc), base.goroutines)
	for _, s := range samples {
		fmt.Fprintf(&curve, "| %v | %d | %s | %s | %d |\n", s.at.Round(time.Second), s.requests, mib(s.heapInuse), mib(s.heapAlloc), s.goroutines)
	}
	fmt.Fprintf(&curve, "| quiet (load stopped) | %d | %s | %s | %d |\n", quiet.requests, mib(quiet.heapInuse), mib(quiet.heapAlloc), quiet.goroutines)
	fmt.Fprintf(&curve, "| stopped (gateway and backends closed) | %d | %s | %s | %d |\n", stopped.requests, mib(stopped.heapInuse), mib(stopped.heapAlloc), stopped.goroutines)
	t.Logf("soak (%s form): %v, %d requests (%.0f/s), %d fault phases of %v; curve:\n%s", form(), elapsed.Round(time.Second),
		f.n, float64(f.n)/elapsed.Seconds(), phases, phase, curve.String())
	appendReport(t, fmt.Sprintf("| soak | %v | %d requests | heap in use MiB start/warm/end/quiet %s/%s/%s/%s | goroutines %d/%d/%d/%d/%d |",
		elapsed.Round(time.Second), f.n, mib(base.heapInuse), mib(warm.heapInuse), mib(end.heapInuse), mib(quiet.heapInuse),
		base.goroutines, warm.goroutines, end.goroutines, quiet.goroutines, stopped.goroutines))

	if lim := warm.heapInuse + warm.heapInuse/4 + heapSlack; end.heapInuse > lim {
		t.Errorf("heap in use grew from %s MiB after warm-up to %s MiB at the end, want <= %s MiB", mib(warm.heapInuse), mib(end.heapInuse), mib(lim))
	}
	if lim := warm.goroutines + warm.goroutines/4 + goroutineSlack; end.goroutines > lim {
		t.Errorf("goroutines grew from %d after warm-up to %d at the end, want <= %d", warm.goroutines, end.goroutines, lim)
	}
	if quiet.goroutines > warm.goroutines {
		t.Errorf("goroutines once the load stopped = %d, want <= %d (under load after warm-up)", quiet.goroutines, warm.goroutines)
	}
	if stopped.goroutines > base.goroutines+stoppedSlack {
		t.Errorf("goroutines after the gateway and backends stopped = %d, want <= %d (before the soak) + %d", stopped.goroutines, base.goroutines, stoppedSlack)
	}
	expectAllAnswered(t, f, rs)
	if f.okRate() < 0.9 {
		t.Errorf("success rate %.1f %%, want >= 90 %% (only one backend is faulty, and only mid-stream cuts may fail)", 100*f.okRate())
	}
	for _, r := range rs {
		if r.out != okAnswer && r.out != aborted && !(r.out == errorAnswer && r.status == http.StatusOK) {
			t.Errorf("request %d (%s): %s with status %d (code %q, trail %q): only a cut mid-answer may fail while a healthy backend remains",
				r.i, r.kind, r.out, r.status, r.errCode, r.trail)
			break
		}
	}
	if min := int(duration.Seconds()) * 50; f.n < min {
		t.Errorf("only %d requests in %v, want >= %d", f.n, elapsed, min)
	}
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b)
}
