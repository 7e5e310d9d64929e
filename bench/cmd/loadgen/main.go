// Command loadgen is the benchmark's closed-loop load generator. Each of -c
// workers holds one keep-alive HTTP/1.1 connection and sends the next request
// as soon as the last response ends. Requests are pre-rendered bytes and
// responses are parsed by hand (content-length and chunked), so the
// generator spends little CPU of its own; latencies go into a preallocated
// histogram.
//
// Modes:
//
//	closed  -c N -d 10s            throughput and latency (with -stream: time
//	                               to first event and the largest gap between
//	                               events of each stream)
//	hold    -n 10000 -hold 20s     open N streams, keep them open, report the
//	                               RSS of -pid with all of them open
//
// With -pid, the CPU time (utime+stime) that process used during the
// measured window is divided by the requests completed in it. One JSON line
// goes to stdout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/llmgate/llmgate/bench/internal/hist"
	"github.com/llmgate/llmgate/bench/internal/proc"
)

const (
	plainBody  = `{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, how are you?"}],"max_tokens":64}`
	streamBody = `{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, how are you?"}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`
)

type options struct {
	mode    string
	addr    string
	path    string
	key     string
	stream  bool
	events  int
	conc    int
	dur     time.Duration
	warmup  time.Duration
	timeout time.Duration
	pid     int
	// hold mode
	n        int
	openConc int
	openMax  time.Duration
	hold     time.Duration
	// labels copied to the output
	target, phase string
	round         int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")
	var o options
	flag.StringVar(&o.mode, "mode", "closed", "`mode`: closed or hold")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "target `host:port` (plain HTTP/1.1)")
	flag.StringVar(&o.path, "path", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "request `path`")
	flag.StringVar(&o.key, "key", os.Getenv("LOADGEN_KEY"), "api-key header value (default $LOADGEN_KEY; empty: none)")
	flag.BoolVar(&o.stream, "stream", false, `send "stream": true and time the SSE events`)
	flag.IntVar(&o.events, "events", 0, "SSE events each stream must carry (0: any); a stream with another count is an error")
	flag.IntVar(&o.conc, "c", 50, "closed: concurrent connections")
	flag.DurationVar(&o.dur, "d", 10*time.Second, "closed: measured duration")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "closed: unmeasured warm-up before -d")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "closed: bound on one request")
	flag.IntVar(&o.pid, "pid", 0, "`PID` whose CPU (closed) or memory (hold) is measured; 0: none")
	flag.IntVar(&o.n, "n", 10000, "hold: streams to open")
	flag.IntVar(&o.openConc, "open-conc", 256, "hold: streams being opened at once")
	flag.DurationVar(&o.openMax, "open-timeout", 60*time.Second, "hold: bound on opening all streams")
	flag.DurationVar(&o.hold, "hold", 20*time.Second, "hold: how long all streams stay open")
	flag.StringVar(&o.target, "target", "", "label: target name, copied to the output")
	flag.StringVar(&o.phase, "phase", "", "label: phase name, copied to the output")
	flag.IntVar(&o.round, "round", 0, "label: round number, copied to the output")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var (
		out any
		err error
	)
	switch o.mode {
	case "closed":
		out, err = closed(ctx, o)
	case "hold":
		out, err = holdStreams(ctx, o)
	default:
		err = fmt.Errorf("-mode: %q is neither closed nor hold", o.mode)
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}

func (o options) request() []byte {
	body := plainBody
	if o.stream {
		body = streamBody
	}
	return request(o.addr, o.path, o.key, []byte(body))
}

// result is one closed-loop phase. Durations are in microseconds.
type result struct {
	Kind       string  `json:"kind"` // "load" or "stream"
	Target     string  `json:"target"`
	Phase      string  `json:"phase"`
	Round      int     `json:"round"`
	Conc       int     `json:"conc"`
	WindowS    float64 `json:"window_s"`
	Requests   uint64  `json:"requests"`
	Errors     uint64  `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Reconnects uint64  `json:"reconnects"`
	RPS        float64 `json:"rps"`
	P50        float64 `json:"p50_us"`
	P90        float64 `json:"p90_us"`
	P99        float64 `json:"p99_us"`
	Max        float64 `json:"max_us"`
	Mean       float64 `json:"mean_us"`
	CPUPerReq  float64 `json:"cpu_us_per_req,omitempty"`
	CPUUtil    float64 `json:"cpu_util,omitempty"` // CPU seconds per second of the window
	TTFCP50    float64 `json:"ttfc_p50_us,omitempty"`
	TTFCP99    float64 `json:"ttfc_p99_us,omitempty"`
	GapP50     float64 `json:"gap_p50_us,omitempty"`
	GapP99     float64 `json:"gap_p99_us,omitempty"`
	GapMax     float64 `json:"gap_max_us,omitempty"`
	LoadgenCPU float64 `json:"loadgen_cpu_us_per_req"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// phase is the shared state of one closed-loop run. Safe for concurrent use.
type phase struct {
	o          options
	req        []byte
	warmEnd    time.Time
	end        time.Time
	lat        hist.H
	ttfc       hist.H
	gap        hist.H
	errors     atomic.Uint64
	reconnects atomic.Uint64
	firstErr   sync.Once
	errText    atomic.Pointer[string]
}

func (p *phase) fail(err error) {
	p.errors.Add(1)
	p.firstErr.Do(func() { s := err.Error(); p.errText.Store(&s) })
}

func closed(ctx context.Context, o options) (*result, error) {
	if o.conc < 1 || o.dur <= 0 {
		return nil, errors.New("-c and -d must be positive")
	}
	start := time.Now()
	p := &phase{o: o, req: o.request(), warmEnd: start.Add(o.warmup)}
	p.end = p.warmEnd.Add(o.dur)
	ctx, cancel := context.WithDeadline(ctx, p.end.Add(o.timeout))
	defer cancel()

	var wg sync.WaitGroup
	for range o.conc {
		wg.Go(func() { p.work(ctx) })
	}
	self := os.Getpid()
	sleepUntil(ctx, p.warmEnd)
	t0 := time.Now()
	cpu0, err := cpuOf(o.pid)
	if err != nil {
		return nil, err
	}
	own0, _ := proc.CPU(self)
	n0 := p.lat.Count() + p.errors.Load()
	sleepUntil(ctx, p.end)
	t1 := time.Now()
	cpu1, err := cpuOf(o.pid)
	if err != nil {
		return nil, err
	}
	own1, _ := proc.CPU(self)
	n1 := p.lat.Count() + p.errors.Load()
	wg.Wait() // workers stop after their request in flight at p.end

	r := &result{
		Kind: "load", Target: o.target, Phase: o.phase, Round: o.round, Conc: o.conc,
		WindowS:    t1.Sub(t0).Seconds(),
		Requests:   p.lat.Count(),
		Errors:     p.errors.Load(),
		Reconnects: p.reconnects.Load(),
		P50:        us(p.lat.Quantile(0.50)),
		P90:        us(p.lat.Quantile(0.90)),
		P99:        us(p.lat.Quantile(0.99)),
		Max:        us(p.lat.Max()),
		Mean:       us(p.lat.Mean()),
	}
	if s := p.errText.Load(); s != nil {
		r.FirstError = *s
	}
	r.RPS = float64(r.Requests) / r.WindowS
	if done := n1 - n0; done > 0 {
		if o.pid != 0 {
			r.CPUPerReq = us(cpu1-cpu0) / float64(done)
			r.CPUUtil = (cpu1 - cpu0).Seconds() / r.WindowS
		}
		r.LoadgenCPU = us(own1-own0) / float64(done)
	}
	if o.stream {
		r.Kind = "stream"
		r.TTFCP50, r.TTFCP99 = us(p.ttfc.Quantile(0.50)), us(p.ttfc.Quantile(0.99))
		r.GapP50, r.GapP99, r.GapMax = us(p.gap.Quantile(0.50)), us(p.gap.Quantile(0.99)), us(p.gap.Max())
	}
	return r, nil
}

func cpuOf(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	return proc.CPU(pid)
}

func sleepUntil(ctx context.Context, t time.Time) {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// conn is one worker's keep-alive connection. Not safe for concurrent use.
type conn struct {
	nc net.Conn
	br *bufio.Reader
}

func (c *conn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc, c.br = nil, nil
	}
}

// work is one closed-loop worker. Requests that end within
// [warmEnd, end) are recorded; the worker stops at end or when ctx ends.
func (p *phase) work(ctx context.Context) {
	var c conn
	defer c.close()
	var sc sse
	var d net.Dialer
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(p.end) {
			return
		}
		status, err := p.do(ctx, &d, &c, &sc, t0)
		t1 := time.Now()
		if t1.Before(p.warmEnd) || !t1.Before(p.end) {
			continue
		}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				p.fail(err)
			}
		case status != 200:
			p.fail(fmt.Errorf("status %d", status))
		case p.o.stream && p.o.events > 0 && sc.events != p.o.events:
			p.fail(fmt.Errorf("stream carried %d events, want %d", sc.events, p.o.events))
		default:
			p.lat.Record(t1.Sub(t0))
			if p.o.stream {
				p.ttfc.Record(sc.first)
				p.gap.Record(sc.maxGap)
			}
		}
	}
}

// do sends one request and reads its response. A reused connection that
// fails before any answer (the server closed it while idle) is replaced once.
func (p *phase) do(ctx context.Context, d *net.Dialer, c *conn, sc *sse, t0 time.Time) (int, error) {
	for attempt := 0; ; attempt++ {
		fresh := c.nc == nil
		if fresh {
			nc, err := d.DialContext(ctx, "tcp", p.o.addr)
			if err != nil {
				return 0, err
			}
			c.nc, c.br = nc, bufio.NewReaderSize(nc, 16<<10)
			p.reconnects.Add(1)
		}
		sc.reset(t0)
		_ = c.nc.SetDeadline(t0.Add(p.o.timeout))
		var (
			h   head
			err error
		)
		if _, err = c.nc.Write(p.req); err == nil {
			h, err = readHead(c.br)
		}
		if err != nil {
			c.close()
			if !fresh && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return 0, fmt.Errorf("response head (fresh connection %v): %w", fresh, err)
		}
		var s *sse
		if p.o.stream {
			s = sc
		}
		keep, err := readBody(c.br, h, s)
		if err != nil {
			err = fmt.Errorf("status %d body after %d events: %w", h.status, sc.events, err)
		}
		if err != nil || !keep {
			c.close()
		}
		return h.status, err
	}
}
