package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/bench/internal/proc"
)

// holdResult is one hold run: memory of -pid with every stream open.
type holdResult struct {
	Kind        string  `json:"kind"` // "mem"
	Target      string  `json:"target"`
	Streams     int     `json:"streams"`
	Opened      int64   `json:"opened"`
	Failed      int64   `json:"failed"`
	EndedEarly  int64   `json:"ended_early"`
	FirstError  string  `json:"first_error,omitempty"`
	OpenS       float64 `json:"open_s"`
	HoldS       float64 `json:"hold_s"`
	IdleRSSKiB  int64   `json:"idle_rss_kib"`
	OpenRSSKiB  int64   `json:"open_rss_kib"`
	EndRSSKiB   int64   `json:"end_rss_kib"`
	HWMKiB      int64   `json:"hwm_kib"`
	Threads     int64   `json:"threads"`
	PerStreamKB float64 `json:"per_stream_kib"`
	CPUPerSec   float64 `json:"cpu_util_held"` // CPU seconds per second while holding
	LoadgenKiB  int64   `json:"loadgen_rss_kib"`
}

// holder opens and holds streams: one goroutine and one small buffer per
// connection, at most cap(sem) being opened at once. Safe for concurrent use.
type holder struct {
	addr    string
	req     []byte
	dialer  net.Dialer
	ctx     context.Context // ends the hold: every connection closes
	openCtx context.Context // bounds opening
	sem     chan struct{}

	opened, failed, early, settled atomic.Int64
	n                              int64
	allOpen                        chan struct{} // closed once every stream opened or failed
	firstErr                       atomic.Pointer[string]
}

func (h *holder) fail(err error) {
	h.failed.Add(1)
	s := err.Error()
	h.firstErr.CompareAndSwap(nil, &s)
}

func (h *holder) settle() {
	if h.settled.Add(1) == h.n {
		close(h.allOpen)
	}
}

func holdStreams(ctx context.Context, o options) (*holdResult, error) {
	if o.pid == 0 {
		return nil, errors.New("hold: -pid is required")
	}
	if o.n < 1 || o.openConc < 1 {
		return nil, errors.New("hold: -n and -open-conc must be positive")
	}
	o.stream = true
	idle, err := proc.ReadStatus(o.pid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	openCtx, openCancel := context.WithTimeout(ctx, o.openMax)
	defer openCancel()
	h := &holder{
		addr: o.addr, req: o.request(), ctx: ctx, openCtx: openCtx,
		sem: make(chan struct{}, o.openConc), n: int64(o.n), allOpen: make(chan struct{}),
	}

	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { h.dispatch(&wg) })
	select {
	case <-h.allOpen:
	case <-openCtx.Done():
	}
	openS := time.Since(start).Seconds()
	time.Sleep(time.Second) // let the proxy settle before sampling
	cpu0, _ := proc.CPU(o.pid)
	open, err := proc.ReadStatus(o.pid)
	if err != nil {
		return nil, err
	}
	h0 := time.Now()
	sleepUntil(ctx, h0.Add(o.hold))
	cpu1, _ := proc.CPU(o.pid)
	end, err := proc.ReadStatus(o.pid)
	if err != nil {
		return nil, err
	}
	held := time.Since(h0).Seconds()
	self, _ := proc.ReadStatus(os.Getpid())
	cancel() // closes every connection
	wg.Wait()

	r := &holdResult{
		Kind: "mem", Target: o.target, Streams: o.n,
		Opened: h.opened.Load(), Failed: h.failed.Load(), EndedEarly: h.early.Load(),
		OpenS: openS, HoldS: held,
		IdleRSSKiB: idle.RSSKiB, OpenRSSKiB: open.RSSKiB, EndRSSKiB: end.RSSKiB, HWMKiB: end.HWMKiB,
		Threads: open.Threads, CPUPerSec: (cpu1 - cpu0).Seconds() / held, LoadgenKiB: self.RSSKiB,
	}
	if s := h.firstErr.Load(); s != nil {
		r.FirstError = *s
	}
	if r.Opened > 0 {
		r.PerStreamKB = float64(open.RSSKiB-idle.RSSKiB) / float64(r.Opened)
	}
	return r, nil
}

// dispatch starts one goroutine per stream, each on wg (dispatch itself runs
// on wg, so wg.Wait covers every stream it started).
func (h *holder) dispatch(wg *sync.WaitGroup) {
	for i := range h.n {
		select {
		case h.sem <- struct{}{}:
		case <-h.openCtx.Done():
			for range h.n - i {
				h.fail(errors.New("not opened within -open-timeout"))
				h.settle()
			}
			return
		}
		wg.Go(h.one)
	}
}

// one opens a stream, counts it open at its first body byte, then reads it
// until the hold ends; a stream that ends before that ended early.
func (h *holder) one() {
	released := false
	release := func() {
		if !released {
			released = true
			<-h.sem
			h.settle()
		}
	}
	defer release()
	nc, err := h.dialer.DialContext(h.openCtx, "tcp", h.addr)
	if err != nil {
		h.fail(err)
		return
	}
	defer nc.Close()
	stop := context.AfterFunc(h.ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	br := bufio.NewReaderSize(nc, 4<<10)
	if _, err := nc.Write(h.req); err != nil {
		h.fail(err)
		return
	}
	hd, err := readHead(br)
	if err == nil && hd.status != 200 {
		err = fmt.Errorf("status %d", hd.status)
	}
	if err == nil {
		_, err = br.Peek(1)
	}
	if err != nil {
		h.fail(err)
		return
	}
	h.opened.Add(1)
	release()
	_, _ = readBody(br, hd, nil)
	if h.ctx.Err() == nil {
		h.early.Add(1)
	}
}
