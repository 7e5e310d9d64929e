package main

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	lines := []line{
		{Kind: "load", Target: "llmgate", Phase: "c50", Round: 1, Conc: 50, RPS: 900, P50: 1200, P99: 3000, CPUPerReq: 110},
		{Kind: "load", Target: "llmgate", Phase: "c50", Round: 2, Conc: 50, RPS: 1100, P50: 1400, P99: 3200, CPUPerReq: 90},
		{Kind: "load", Target: "baseline", Phase: "c50", Round: 1, Conc: 50, RPS: 1000, P50: 1100, P99: 2500, CPUPerReq: 50},
		{Kind: "load", Target: "direct", Phase: "c50", Round: 1, Conc: 50, RPS: 4000, P50: 300, P99: 900},
		{Kind: "load", Target: "direct", Phase: "c1", Round: 1, Conc: 1, RPS: 9000, P50: 50, P99: 90},
		{Kind: "stream", Target: "llmgate", Phase: "s50", Round: 1, Conc: 50, RPS: 200, TTFCP50: 1500, TTFCP99: 4000, GapP99: 12000, Errors: 2, FirstError: "status 502"},
		{Kind: "stream", Target: "direct", Phase: "s50", Round: 1, Conc: 50, RPS: 210, TTFCP50: 500, TTFCP99: 1000, GapP99: 11000},
		{Kind: "mem", Target: "llmgate", Streams: 100, Opened: 100, IdleRSS: 1024, OpenRSS: 7168, PerStream: 61.4},
		{Kind: "sys", Target: "llmgate", Phase: "c1", Units: 30000, Calls: map[string]float64{"all": 11.02, "read": 4, "write": 2, "futex": 0.001}},
		{Kind: "sys", Target: "tcprelay", Phase: "c1", Units: 40000, Calls: map[string]float64{"all": 13.5, "read": 4, "write": 2, "futex": 2.03}},
		{Kind: "soak", T: 0, RSSKiB: 1024, Threads: 6},
		{Kind: "soak", T: 60, RSSKiB: 2048, Threads: 7},
	}
	var b strings.Builder
	write(&b, "t", lines)
	out := b.String()
	for _, want := range []string{
		"| direct | 1 | 9000 |",                      // phases sorted by concurrency
		"| llmgate | 50 | 1000 | 1.30 ms |",          // medians over rounds
		"| +1.00 ms |",                               // added p50 over direct
		"| CPU/req llmgate ÷ baseline | — | 2.00× |", // c1 has no llmgate
		"| llmgate | s50 | 200.0 | 1.50 ms | +1.00 ms | +3.00 ms |",
		"| 61.4 KiB |",
		"llmgate s50 round 1: 2 errors, first: status 502",
		"| target | phase | counted over | all | read | write | futex |", // calls no row made are left out
		"| llmgate | c1 | 30000 | 11.02 | 4.00 | 2.00 | 0.00 |",
		"| tcprelay | c1 | 40000 | 13.50 | 4.00 | 2.00 | 2.03 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
}

// TestSyscallColumns: the columns are the calls some row made, those the
// report names in its order and any other after them, so a call added to
// bench/run.sh's list shows without a change here.
func TestSyscallColumns(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	syscalls(&b, []line{
		{Kind: "sys", Target: "a", Phase: "c1", Units: 10, Calls: map[string]float64{"write": 2, "accept4": 0.5, "read": 3, "brk": 0.001}},
		{Kind: "sys", Target: "b", Phase: "c1", Units: 10, Calls: map[string]float64{"all": 9, "futex": 1}},
	})
	for _, want := range []string{
		"| target | phase | counted over | all | read | write | futex | accept4 |",
		"| a | c1 | 10 | 0.00 | 3.00 | 2.00 | 0.00 | 0.50 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q; got:\n%s", want, b.String())
		}
	}
}
