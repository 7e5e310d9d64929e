package app

import (
	"io"
	"sync"
	"time"
)

// LineWriter batches whole lines (the access log) to an underlying writer:
// a Write appends to a buffer under a lock, and the buffer goes out when it
// fills, every flushEvery, and on Close. One write(2) then carries many
// lines instead of one per request. Safe for concurrent use.
type LineWriter struct {
	mu   sync.Mutex // guards buf and w
	w    io.Writer
	buf  []byte
	stop chan struct{}
	done chan struct{}
}

const (
	lineBufSize = 64 << 10
	flushEvery  = 100 * time.Millisecond
)

// NewLineWriter starts a LineWriter on w; Close flushes and stops it.
func NewLineWriter(w io.Writer) *LineWriter {
	lw := &LineWriter{w: w, buf: make([]byte, 0, lineBufSize), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.loop()
	return lw
}

// Write buffers p, which should be whole lines.
func (lw *LineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf)+len(p) > cap(lw.buf) {
		lw.flushLocked()
		if len(p) > cap(lw.buf) {
			return lw.w.Write(p)
		}
	}
	lw.buf = append(lw.buf, p...)
	return len(p), nil
}

func (lw *LineWriter) flushLocked() {
	if len(lw.buf) > 0 {
		_, _ = lw.w.Write(lw.buf)
		lw.buf = lw.buf[:0]
	}
}

// Flush writes out what is buffered.
func (lw *LineWriter) Flush() {
	lw.mu.Lock()
	lw.flushLocked()
	lw.mu.Unlock()
}

func (lw *LineWriter) loop() {
	defer close(lw.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			lw.Flush()
		case <-lw.stop:
			lw.Flush()
			return
		}
	}
}

// Close flushes and stops the writer. It is safe to call once.
func (lw *LineWriter) Close() error {
	close(lw.stop)
	<-lw.done
	return nil
}
