package proxy

import (
	"io"
	"sync/atomic"
	"time"
)

// idleTimer cancels an attempt when its upstream body goes quiet for longer
// than d. Each read pushes the deadline back; a nil *idleTimer does nothing.
type idleTimer struct {
	d        time.Duration
	t        *time.Timer
	hasFired atomic.Bool
}

func newIdleTimer(d time.Duration, cancel func()) *idleTimer {
	if d <= 0 {
		return nil
	}
	it := &idleTimer{d: d}
	it.t = time.AfterFunc(d, func() {
		it.hasFired.Store(true)
		cancel()
	})
	return it
}

func (it *idleTimer) reset() {
	if it != nil {
		it.t.Reset(it.d)
	}
}

func (it *idleTimer) stop() {
	if it != nil {
		it.t.Stop()
	}
}

func (it *idleTimer) fired() bool { return it != nil && it.hasFired.Load() }

// idleReader extends the idle deadline after every read.
type idleReader struct {
	r  io.Reader
	it *idleTimer
}

func (ir idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.it.reset()
	}
	return n, err
}

func onRead(r io.Reader, it *idleTimer) io.Reader {
	if it == nil {
		return r
	}
	return idleReader{r: r, it: it}
}
