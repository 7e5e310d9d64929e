//go:build !linux || h1portablewatch

// The portable watch, on every system but Linux; the tag h1portablewatch
// selects it on Linux too, so that CI tests it (.ci/run).

package h1

import (
	"sync/atomic"
	"time"
)

// watcher notices a client leaving while a handler runs: once the handler
// has run for watchAfter and its request body is read, a goroutine reads
// from the connection; an end of stream or error cancels the request, a
// byte is kept as the start of the next request. Most answers are done
// before it would start.
type watcher struct {
	c         *srvConn
	timer     *time.Timer
	state     atomic.Int32 // watchOff, watchArmed, watchFired or watchReading
	watchable atomic.Bool  // the body is read and no pipelined request is buffered
	stopping  atomic.Bool
	done      chan struct{}
	buf       [1]byte
}

const (
	watchOff     int32 = iota
	watchArmed         // the timer runs
	watchFired         // the timer fired before the body was read
	watchReading       // a goroutine reads from the connection
)

func (w *watcher) arm() {
	w.state.Store(watchArmed)
	if w.timer == nil {
		w.done = make(chan struct{}, 1)
		w.timer = time.AfterFunc(watchAfter, w.fire)
		return
	}
	w.timer.Reset(watchAfter)
}

// fire runs when the timer expires.
func (w *watcher) fire() {
	if w.state.CompareAndSwap(watchArmed, watchFired) && w.watchable.Load() &&
		w.state.CompareAndSwap(watchFired, watchReading) {
		w.read()
	}
}

// bodyRead is called once the body is read and no pipelined request is
// buffered; it starts the read when the timer has already fired.
func (w *watcher) bodyRead() {
	w.watchable.Store(true)
	if w.state.Load() == watchFired && w.state.CompareAndSwap(watchFired, watchReading) {
		go w.read()
	}
}

func (w *watcher) read() {
	c := w.c
	n, err := c.rdl.Read(w.buf[:])
	switch {
	case n == 1:
		c.src.pre, c.src.hasPre = w.buf[0], true
	case err != nil && !w.stopping.Load():
		c.peerClosed()
	}
	w.done <- struct{}{}
}

// stop ends the watch; a read in progress is interrupted and waited for.
func (w *watcher) stop() {
	defer w.watchable.Store(false)
	for {
		switch s := w.state.Load(); s {
		case watchOff:
			return
		case watchArmed, watchFired:
			if w.state.CompareAndSwap(s, watchOff) {
				w.timer.Stop()
				return
			}
		case watchReading:
			w.stopping.Store(true)
			_ = w.c.rdl.Set(aLongTimeAgo)
			<-w.done
			_ = w.c.rdl.Set(time.Time{})
			w.stopping.Store(false)
			w.state.Store(watchOff)
			return
		}
	}
}
