package proxy

import (
	"io"
	"sync/atomic"
	"time"
)

// guard cancels an attempt when the request's deadline passes (from before
// the request is sent) or, once the response has started, when its body
// goes quiet for longer than the idle timeout. One timer does both, and it
// is re-armed lazily: a read only records its time, and the timer, when it
// goes off, fires only if the body has really been quiet (else it sleeps
// again for what is left). A nil *guard does nothing.
type guard struct {
	idle       time.Duration
	deadline   atomic.Int64 // since base, ns; 0: none
	base       time.Time    // monotonic origin of lastRead and deadline
	cancel     func()
	t          *time.Timer
	reading    atomic.Bool
	lastRead   atomic.Int64 // since base, ns
	hasFired   atomic.Bool
	byDeadline atomic.Bool // it fired because the deadline passed, not for a quiet body
}

// newGuard arms a guard for the deadline (zero: none); idle applies once
// reading starts. It returns nil when there is nothing to guard.
func newGuard(idle time.Duration, deadline time.Time, cancel func()) *guard {
	if idle <= 0 && deadline.IsZero() {
		return nil
	}
	g := &guard{idle: idle, base: time.Now(), cancel: cancel}
	g.setDeadline(deadline)
	g.t = time.AfterFunc(g.next(), g.expire)
	return g
}

func (g *guard) setDeadline(t time.Time) {
	var d int64
	if !t.IsZero() {
		d = max(int64(t.Sub(g.base)), 1)
	}
	g.deadline.Store(d)
}

// commit is called once the client has the answer's head: from then on the
// deadline is hard (timeouts.total's; zero: none) and no longer the
// client's own (x-stainless-timeout), which its SDK keeps by itself, per
// read or for the whole call. A stream still flowing is not cut for it.
func (g *guard) commit(hard time.Time) {
	if g != nil {
		g.setDeadline(hard)
		g.t.Reset(g.next())
	}
}

// next is the time from now until the guard is due: the deadline, or the
// idle timeout after the last read, whichever comes first.
func (g *guard) next() time.Duration {
	now := time.Since(g.base)
	d := time.Duration(1<<63 - 1)
	if g.reading.Load() && g.idle > 0 {
		d = max(time.Duration(g.lastRead.Load())+g.idle-now, 0)
	}
	if dl := g.deadline.Load(); dl > 0 {
		d = min(d, max(time.Duration(dl)-now, 0))
	}
	return d
}

// expire runs when the timer goes off: a read since it was armed (or a
// switch to idle timing) leaves time, and the timer sleeps again.
func (g *guard) expire() {
	if d := g.next(); d > 0 {
		g.t.Reset(d)
		return
	}
	if dl := g.deadline.Load(); dl > 0 && time.Since(g.base) >= time.Duration(dl) {
		g.byDeadline.Store(true)
	}
	g.hasFired.Store(true)
	g.cancel()
}

// deadlinePassed reports that the guard cancelled the attempt because the
// request's time ran out: the request's own limit, not the backend's fault.
func (g *guard) deadlinePassed() bool { return g != nil && g.byDeadline.Load() }

// startReading switches the guard to idle timing: the response has begun.
func (g *guard) startReading() {
	if g != nil {
		g.lastRead.Store(int64(time.Since(g.base)))
		g.reading.Store(true)
		g.t.Reset(g.next()) // idle timing may be due before the deadline
	}
}

// touch records a read: the body is not quiet.
func (g *guard) touch() {
	if g != nil {
		g.lastRead.Store(int64(time.Since(g.base)))
	}
}

func (g *guard) stop() {
	if g != nil {
		g.t.Stop()
	}
}

// fired reports that the guard cancelled the attempt.
func (g *guard) fired() bool { return g != nil && g.hasFired.Load() }

// cause is why a read the guard interrupted failed: the request's time
// ran out, or the upstream stalled; else err as it is (the read's own
// error is then only the cancellation the guard caused).
func (g *guard) cause(err error) error {
	switch {
	case g.deadlinePassed():
		return errDeadline
	case g.fired():
		return errStreamIdle
	}
	return err
}

// guardedReader extends the guard after every read.
type guardedReader struct {
	r io.Reader
	g *guard
}

func (gr guardedReader) Read(p []byte) (int, error) {
	n, err := gr.r.Read(p)
	if n > 0 {
		gr.g.touch()
	}
	return n, err
}

// watchesIdle reports whether reads should be recorded: the guard times
// the body's quiet spells.
func (g *guard) watchesIdle() bool { return g != nil && g.idle > 0 }

// onRead wraps r so that reads extend g. (Not inlined: its temporaries
// would sit in the frame a relayed stream keeps.) A relay records its reads
// with a hook instead (stream.Filter.OnRead), one reader fewer per event.
//
//go:noinline
func onRead(r io.Reader, g *guard) io.Reader {
	if !g.watchesIdle() {
		return r
	}
	return guardedReader{r: r, g: g}
}
