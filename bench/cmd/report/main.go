// Command report turns the JSON lines written by bench/run.sh (loadgen
// results, peak RSS per process, memory and soak samples) into Markdown
// tables and the ratios that survive a noisy machine.
//
//	report -in results.jsonl [-title "quick run"]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"slices"
	"strings"
)

// line is the union of every record kind in the results file.
type line struct {
	Kind   string `json:"kind"` // load, stream, rss, mem, soak, sys, info
	Target string `json:"target"`
	Phase  string `json:"phase"`
	Round  int    `json:"round"`
	Conc   int    `json:"conc"`

	Requests   float64 `json:"requests"`
	Errors     float64 `json:"errors"`
	FirstError string  `json:"first_error"`
	RPS        float64 `json:"rps"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	Max        float64 `json:"max_us"`
	CPUPerReq  float64 `json:"cpu_us_per_req"`
	CPUUtil    float64 `json:"cpu_util"`
	TTFCP50    float64 `json:"ttfc_p50_us"`
	TTFCP99    float64 `json:"ttfc_p99_us"`
	GapP99     float64 `json:"gap_p99_us"`
	GapMax     float64 `json:"gap_max_us"`
	LoadgenCPU float64 `json:"loadgen_cpu_us_per_req"`

	// rss
	HWMKiB float64 `json:"hwm_kib"`
	RSSKiB float64 `json:"rss_kib"`

	// mem
	Streams    float64 `json:"streams"`
	Opened     float64 `json:"opened"`
	Failed     float64 `json:"failed"`
	EndedEarly float64 `json:"ended_early"`
	OpenS      float64 `json:"open_s"`
	IdleRSS    float64 `json:"idle_rss_kib"`
	OpenRSS    float64 `json:"open_rss_kib"`
	EndRSS     float64 `json:"end_rss_kib"`
	PerStream  float64 `json:"per_stream_kib"`
	CPUHeld    float64 `json:"cpu_util_held"`
	LoadgenKiB float64 `json:"loadgen_rss_kib"`

	// soak
	T          float64 `json:"t"`
	Threads    float64 `json:"threads"`
	Goroutines float64 `json:"goroutines"`
	CPUS       float64 `json:"cpu_s"`

	// sys: system calls per unit of work (request or stream), by name; "all" counts every call
	Units float64            `json:"units"`
	Calls map[string]float64 `json:"calls"`

	// info
	Text string `json:"text"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("report: ")
	in := flag.String("in", "", "results `file` (JSON lines); empty: stdin")
	title := flag.String("title", "llmgate benchmark", "heading")
	flag.Parse()
	var r io.Reader = os.Stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		r = f
	}
	var lines []line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			log.Fatalf("line %d: %v", n, err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	write(os.Stdout, *title, lines)
}

// targets in report order; others follow in order of appearance.
var targetOrder = []string{"direct", "llmgate", "baseline", "nginx", "tcprelay"}

func write(w io.Writer, title string, lines []line) {
	fmt.Fprintf(w, "# %s\n\n", title)
	for _, l := range lines {
		if l.Kind == "info" {
			fmt.Fprintf(w, "- %s\n", l.Text)
		}
	}
	fmt.Fprintln(w)
	agg := aggregate(lines)
	throughput(w, agg)
	streams(w, agg)
	peakRSS(w, lines)
	ratios(w, agg)
	memory(w, lines)
	syscalls(w, lines)
	soak(w, lines)
	problems(w, lines)
}

// cell is one (phase, target) after taking the median over rounds.
type cell struct {
	rounds                               int
	requests, errors                     float64
	rps, p50, p99, max, cpu, util, lgcpu float64
	ttfc50, ttfc99, gap99, gapMax        float64
}

type key struct{ phase, target string }

type aggregated struct {
	cells   map[key]*cell
	phases  []string // load phases, by concurrency
	stream  []string // stream phases
	targets []string
}

func aggregate(lines []line) aggregated {
	groups := map[key][]line{}
	a := aggregated{cells: map[key]*cell{}}
	conc := map[string]int{}
	var seen []string
	for _, l := range lines {
		if l.Kind != "load" && l.Kind != "stream" || l.Phase == "" {
			continue
		}
		k := key{l.Phase, l.Target}
		groups[k] = append(groups[k], l)
		if _, ok := conc[l.Phase]; !ok {
			conc[l.Phase] = l.Conc
			if l.Kind == "load" {
				a.phases = append(a.phases, l.Phase)
			} else {
				a.stream = append(a.stream, l.Phase)
			}
		}
		if !slices.Contains(seen, l.Target) {
			seen = append(seen, l.Target)
		}
	}
	slices.SortStableFunc(a.phases, func(x, y string) int { return conc[x] - conc[y] })
	for _, t := range targetOrder {
		if slices.Contains(seen, t) {
			a.targets = append(a.targets, t)
		}
	}
	for _, t := range seen {
		if !slices.Contains(a.targets, t) {
			a.targets = append(a.targets, t)
		}
	}
	for k, ls := range groups {
		med := func(f func(line) float64) float64 {
			v := make([]float64, len(ls))
			for i, l := range ls {
				v[i] = f(l)
			}
			return median(v)
		}
		c := &cell{rounds: len(ls)}
		for _, l := range ls {
			c.requests += l.Requests
			c.errors += l.Errors
			c.max = max(c.max, l.Max)
			c.gapMax = max(c.gapMax, l.GapMax)
		}
		c.rps = med(func(l line) float64 { return l.RPS })
		c.p50 = med(func(l line) float64 { return l.P50 })
		c.p99 = med(func(l line) float64 { return l.P99 })
		c.cpu = med(func(l line) float64 { return l.CPUPerReq })
		c.util = med(func(l line) float64 { return l.CPUUtil })
		c.lgcpu = med(func(l line) float64 { return l.LoadgenCPU })
		c.ttfc50 = med(func(l line) float64 { return l.TTFCP50 })
		c.ttfc99 = med(func(l line) float64 { return l.TTFCP99 })
		c.gap99 = med(func(l line) float64 { return l.GapP99 })
		a.cells[k] = c
	}
	return a
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// dur formats microseconds for a table.
func dur(us float64) string {
	switch a := math.Abs(us); {
	case a < 1000:
		return fmt.Sprintf("%.0f µs", us)
	case a < 1e6:
		return fmt.Sprintf("%.2f ms", us/1000)
	default:
		return fmt.Sprintf("%.2f s", us/1e6)
	}
}

func signed(us float64) string {
	if us >= 0 {
		return "+" + dur(us)
	}
	return dur(us)
}

func cpu(us float64) string {
	if us == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", us)
}

func throughput(w io.Writer, a aggregated) {
	if len(a.phases) == 0 {
		return
	}
	fmt.Fprintln(w, "## Requests (closed loop, non-streamed chat completion)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | conc | req/s | p50 | p99 | max | added p50 | added p99 | proxy CPU µs/req | proxy CPU util | errors |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, p := range a.phases {
		direct := a.cells[key{p, "direct"}]
		for _, t := range a.targets {
			c := a.cells[key{p, t}]
			if c == nil {
				continue
			}
			added50, added99 := "—", "—"
			if direct != nil && t != "direct" {
				added50, added99 = signed(c.p50-direct.p50), signed(c.p99-direct.p99)
			}
			util := "—"
			if c.util > 0 {
				util = fmt.Sprintf("%.0f %%", 100*c.util)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %.0f |\n",
				t, strings.TrimPrefix(p, "c"), c.rps, dur(c.p50), dur(c.p99), dur(c.max), added50, added99, cpu(c.cpu), util, c.errors)
		}
	}
	fmt.Fprintln(w)
}

func streams(w io.Writer, a aggregated) {
	if len(a.stream) == 0 {
		return
	}
	fmt.Fprintln(w, "## Streams (closed loop; time to first chunk = request sent to first complete SSE event)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | phase | streams/s | TTFC p50 | added TTFC p50 | added TTFC p99 | max gap p99 | max gap max | proxy CPU µs/stream | errors |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, p := range a.stream {
		direct := a.cells[key{p, "direct"}]
		for _, t := range a.targets {
			c := a.cells[key{p, t}]
			if c == nil {
				continue
			}
			add50, add99 := "—", "—"
			if direct != nil && t != "direct" {
				add50, add99 = signed(c.ttfc50-direct.ttfc50), signed(c.ttfc99-direct.ttfc99)
			}
			fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %.0f |\n",
				t, p, c.rps, dur(c.ttfc50), add50, add99, dur(c.gap99), dur(c.gapMax), cpu(c.cpu), c.errors)
		}
	}
	fmt.Fprintln(w)
}

func peakRSS(w io.Writer, lines []line) {
	rows := ofKind(lines, "rss")
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "## Peak memory over the request and stream phases")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| process | peak RSS (VmHWM) | RSS at the end |")
	fmt.Fprintln(w, "|---|--:|--:|")
	for _, l := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", l.Target, mib(l.HWMKiB), mib(l.RSSKiB))
	}
	fmt.Fprintln(w)
}

// ofKind returns the lines of one kind, in order.
func ofKind(lines []line, kind string) []line {
	var rows []line
	for _, l := range lines {
		if l.Kind == kind {
			rows = append(rows, l)
		}
	}
	return rows
}

func mib(kib float64) string { return fmt.Sprintf("%.1f MiB", kib/1024) }

// minAdded is the smallest added latency, in µs, worth dividing by.
const minAdded = 10

func ratios(w io.Writer, a aggregated) {
	type pair struct{ num, den string }
	var pairs []pair
	for _, p := range []pair{{"llmgate", "baseline"}, {"llmgate", "direct"}, {"baseline", "direct"}, {"llmgate", "nginx"}, {"nginx", "baseline"}, {"llmgate", "tcprelay"}} {
		if slices.Contains(a.targets, p.num) && slices.Contains(a.targets, p.den) {
			pairs = append(pairs, p)
		}
	}
	if len(pairs) == 0 {
		return
	}
	phases := append(slices.Clone(a.phases), a.stream...)
	fmt.Fprintln(w, "## Ratios (what holds on a noisy machine)")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| ratio |")
	for _, p := range phases {
		fmt.Fprintf(w, " %s |", p)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range phases {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprintln(w)
	row := func(name string, f func(c *cell) float64, num, den string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, p := range phases {
			n, d := a.cells[key{p, num}], a.cells[key{p, den}]
			if n == nil || d == nil || f(d) == 0 || f(n) == 0 {
				fmt.Fprint(w, " — |")
				continue
			}
			fmt.Fprintf(w, " %.2f× |", f(n)/f(d))
		}
		fmt.Fprintln(w)
	}
	for _, p := range pairs {
		row(fmt.Sprintf("req/s %s ÷ %s", p.num, p.den), func(c *cell) float64 { return c.rps }, p.num, p.den)
	}
	for _, p := range pairs {
		if p.den == "direct" {
			continue
		}
		row(fmt.Sprintf("CPU/req %s ÷ %s", p.num, p.den), func(c *cell) float64 { return c.cpu }, p.num, p.den)
	}
	for _, p := range pairs {
		if p.num == "direct" || p.den == "direct" || !slices.Contains(a.targets, "direct") {
			continue
		}
		fmt.Fprintf(w, "| added p50 %s ÷ %s |", p.num, p.den)
		for _, ph := range phases {
			n, d, dir := a.cells[key{ph, p.num}], a.cells[key{ph, p.den}], a.cells[key{ph, "direct"}]
			if n == nil || d == nil || dir == nil {
				fmt.Fprint(w, " — |")
				continue
			}
			an, ad := n.p50-dir.p50, d.p50-dir.p50
			if slices.Contains(a.stream, ph) {
				an, ad = n.ttfc50-dir.ttfc50, d.ttfc50-dir.ttfc50
			}
			if ad < minAdded || an < 0 {
				fmt.Fprint(w, " — |") // a ratio of noise
				continue
			}
			fmt.Fprintf(w, " %.2f× |", an/ad)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Stream columns compare streams/s, CPU per stream and added time to first chunk.",
		"An added-latency ratio is left out where the divisor adds under 10 µs.")
	fmt.Fprintln(w)
}

func memory(w io.Writer, lines []line) {
	rows := ofKind(lines, "mem")
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "## Memory: concurrent open streams against a slow upstream")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | streams | opened | failed | ended early | time to open | idle RSS | RSS, all open | RSS after hold | per stream | threads | CPU while held |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, l := range rows {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.0f | %.1f s | %s | %s | %s | %.1f KiB | %.0f | %.0f %% |\n",
			l.Target, l.Streams, l.Opened, l.Failed, l.EndedEarly, l.OpenS, mib(l.IdleRSS), mib(l.OpenRSS), mib(l.EndRSS),
			l.PerStream, l.Threads, 100*l.CPUHeld)
	}
	fmt.Fprintln(w)
}

// sysCallOrder is the column order of the syscalls table for the calls it
// names; a call no row made is left out, one it does not name comes last.
var sysCallOrder = []string{"all", "read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg",
	"epoll_wait", "epoll_pwait", "futex", "nanosleep", "context-switches"}

func syscalls(w io.Writer, lines []line) {
	rows := ofKind(lines, "sys")
	if len(rows) == 0 {
		return
	}
	// Columns: every call some row made, those of sysCallOrder first.
	var cols, others []string
	for _, r := range rows {
		for c, v := range r.Calls {
			if v >= 0.005 && !slices.Contains(cols, c) && !slices.Contains(others, c) {
				if slices.Contains(sysCallOrder, c) {
					cols = append(cols, c)
				} else {
					others = append(others, c)
				}
			}
		}
	}
	slices.SortFunc(cols, func(a, b string) int { return slices.Index(sysCallOrder, a) - slices.Index(sysCallOrder, b) })
	slices.Sort(others)
	cols = append(cols, others...)
	fmt.Fprintln(w, "## System calls per request (c1) and per stream (s50)")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| target | phase | counted over | %s |\n", strings.Join(cols, " | "))
	fmt.Fprintf(w, "|---|---|--:|%s\n", strings.Repeat("--:|", len(cols)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %.0f |", r.Target, r.Phase, r.Units)
		for _, c := range cols {
			fmt.Fprintf(w, " %.2f |", r.Calls[c])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

func soak(w io.Writer, lines []line) {
	rows := ofKind(lines, "soak")
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "## Soak: llmgate under steady mixed load")
	fmt.Fprintln(w)
	for _, l := range lines {
		if l.Kind == "soakload" {
			fmt.Fprintf(w, "- %s: %.0f requests at %.0f/s, %.0f errors, p50 %s, p99 %s\n", l.Phase, l.Requests, l.RPS, l.Errors, dur(l.P50), dur(l.P99))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| t | RSS | peak RSS | threads | goroutines | CPU used |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|")
	for _, l := range rows {
		g := "—" // pprof did not answer
		if l.Goroutines > 0 {
			g = fmt.Sprintf("%.0f", l.Goroutines)
		}
		fmt.Fprintf(w, "| %.0f s | %s | %s | %.0f | %s | %.1f s |\n", l.T, mib(l.RSSKiB), mib(l.HWMKiB), l.Threads, g, l.CPUS)
	}
	// Growth is judged after the first quarter, once pools and caches are warm.
	from := rows[len(rows)/4]
	last := rows[len(rows)-1]
	if last.T > from.T {
		fmt.Fprintf(w, "\nRSS from t=%.0f s to t=%.0f s: %s → %s (%+.1f MiB/min); threads %.0f → %.0f",
			from.T, last.T, mib(from.RSSKiB), mib(last.RSSKiB), (last.RSSKiB-from.RSSKiB)/1024/((last.T-from.T)/60), from.Threads, last.Threads)
		if from.Goroutines > 0 && last.Goroutines > 0 {
			fmt.Fprintf(w, "; goroutines %.0f → %.0f", from.Goroutines, last.Goroutines)
		}
		if last.T-from.T < 60 {
			fmt.Fprint(w, " (too short to judge growth)")
		}
		fmt.Fprintln(w, ".")
	}
	fmt.Fprintln(w)
}

func problems(w io.Writer, lines []line) {
	var out []string
	for _, l := range lines {
		if l.FirstError != "" {
			out = append(out, fmt.Sprintf("%s %s round %d: %.0f errors, first: %s", l.Target, orKind(l.Phase, l.Kind), l.Round, l.Errors+l.Failed, l.FirstError))
		}
	}
	if len(out) == 0 {
		return
	}
	fmt.Fprintln(w, "## Errors")
	fmt.Fprintln(w)
	for _, s := range out {
		fmt.Fprintf(w, "- %s\n", s)
	}
	fmt.Fprintln(w)
}

func orKind(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
