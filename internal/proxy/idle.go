package proxy

import (
	"io"
	"sync/atomic"
	"time"
)

// guard cancels an attempt when the request's deadline passes (from before
// the request is sent) or, once the response has started, when its body
// goes quiet for longer than the idle timeout. One timer does both: each
// read pushes it back to the earlier of now+idle and the deadline. A nil
// *guard does nothing.
type guard struct {
	idle     time.Duration
	deadline time.Time // zero: none
	t        *time.Timer
	reading  bool
	hasFired atomic.Bool
}

// newGuard arms a guard for the deadline (zero: none); idle applies once
// reading starts. It returns nil when there is nothing to guard.
func newGuard(idle time.Duration, deadline time.Time, cancel func()) *guard {
	if idle <= 0 && deadline.IsZero() {
		return nil
	}
	g := &guard{idle: idle, deadline: deadline}
	d := time.Until(deadline)
	if deadline.IsZero() {
		d = time.Duration(1<<63 - 1)
	}
	g.t = time.AfterFunc(max(d, 0), func() {
		g.hasFired.Store(true)
		cancel()
	})
	return g
}

// next is the time until the timer should fire from now.
func (g *guard) next() time.Duration {
	d := time.Duration(1<<63 - 1)
	if g.reading && g.idle > 0 {
		d = g.idle
	}
	if !g.deadline.IsZero() {
		d = min(d, max(time.Until(g.deadline), 0))
	}
	return d
}

// startReading switches the guard to idle timing: the response has begun.
func (g *guard) startReading() {
	if g != nil {
		g.reading = true
		g.t.Reset(g.next())
	}
}

func (g *guard) reset() {
	if g != nil {
		g.t.Reset(g.next())
	}
}

func (g *guard) stop() {
	if g != nil {
		g.t.Stop()
	}
}

// fired reports that the guard cancelled the attempt.
func (g *guard) fired() bool { return g != nil && g.hasFired.Load() }

// guardedReader extends the guard after every read.
type guardedReader struct {
	r io.Reader
	g *guard
}

func (gr guardedReader) Read(p []byte) (int, error) {
	n, err := gr.r.Read(p)
	if n > 0 {
		gr.g.reset()
	}
	return n, err
}

func onRead(r io.Reader, g *guard) io.Reader {
	if g == nil || g.idle <= 0 {
		return r
	}
	return guardedReader{r: r, g: g}
}
