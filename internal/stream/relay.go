// Package stream relays Server-Sent Events from an upstream to a client,
// flushing after every read so each event reaches the client as soon as it
// arrives, and ends a broken stream with an explicit SSE error event.
package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// BufSize is the copy buffer for whole bodies; StreamBufSize the relay's,
// held for a stream's life, so small (an event larger than it passes
// through in pieces). Both pooled: a relay allocates nothing per chunk.
const (
	BufSize       = 32 << 10
	StreamBufSize = 4 << 10
)

var (
	bufPool       = sync.Pool{New: func() any { b := make([]byte, BufSize); return &b }}
	streamBufPool = sync.Pool{New: func() any { b := make([]byte, StreamBufSize); return &b }}
)

// GetBuf returns a pooled copy buffer; PutBuf returns it.
func GetBuf() *[]byte { return bufPool.Get().(*[]byte) }

// PutBuf returns a buffer from GetBuf to the pool.
func PutBuf(b *[]byte) { bufPool.Put(b) }

// GetStreamBuf returns a pooled relay buffer; PutStreamBuf returns it.
func GetStreamBuf() *[]byte { return streamBufPool.Get().(*[]byte) }

// PutStreamBuf returns a buffer from GetStreamBuf to the pool.
func PutStreamBuf(b *[]byte) { streamBufPool.Put(b) }

// Buf is a relay buffer taken from the pool when first used. A copy hands it
// back while its source is quiet (see Waiter), so ten thousand streams
// waiting for their next event hold no relay buffers; Release returns it
// for good.
type Buf struct {
	p     *[]byte
	fixed bool
}

// FixedBuf returns a Buf over p that never goes to the pool.
func FixedBuf(p []byte) *Buf { return &Buf{p: &p, fixed: true} }

// Bytes returns the buffer, taking one from the pool if b holds none.
func (b *Buf) Bytes() []byte {
	if b.p == nil {
		b.p = GetStreamBuf()
	}
	return *b.p
}

// Release returns the buffer to the pool; Bytes takes another.
func (b *Buf) Release() {
	if b.p != nil && !b.fixed {
		PutStreamBuf(b.p)
		b.p = nil
	}
}

// Waiter is a source that can wait until it has bytes to read without
// reading them (an upstream connection's buffered reader). A copy from a
// Waiter holds no buffer while it waits. Wait returns at once when bytes are
// buffered or the source is over; its error is left for the Read after it.
type Waiter interface {
	Wait() error
}

// Tail remembers the last bytes written, to tell whether the stream is at an
// event boundary and whether it ended with [DONE], and the start of the last
// whole event written, to tell whether it was an error event.
type Tail struct {
	b [16]byte
	n int
	// the start of the event being written (CR and leading LF aside) and of
	// the last whole one
	cur, last   [32]byte
	ncur, nlast int
	nl          bool // the last byte written that was not CR was LF
}

// Add records p as written.
func (t *Tail) Add(p []byte) {
	t.events(p)
	if len(p) >= len(t.b) {
		copy(t.b[:], p[len(p)-len(t.b):])
		t.n = len(t.b)
		return
	}
	keep := min(t.n, len(t.b)-len(p))
	copy(t.b[:keep], t.b[t.n-keep:t.n])
	copy(t.b[keep:], p)
	t.n = keep + len(p)
}

// events follows the event boundaries (blank lines) in p: the start of each
// event is kept until the next one is complete.
func (t *Tail) events(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.keep(p)
			t.nl = t.nl && onlyCR(p)
			return
		}
		t.keep(p[:i])
		if t.nl && onlyCR(p[:i]) { // a blank line: the event is whole
			if t.ncur > 0 {
				t.last, t.nlast = t.cur, t.ncur
			}
			t.ncur = 0
		} else {
			t.keep(p[i : i+1])
		}
		t.nl = true
		p = p[i+1:]
	}
}

// keep adds p to the start of the current event, as far as there is room.
func (t *Tail) keep(p []byte) {
	if t.ncur == len(t.cur) {
		return
	}
	if bytes.IndexByte(p, '\r') < 0 { // the usual piece: copied whole
		if t.ncur == 0 {
			p = bytes.TrimLeft(p, "\n")
		}
		t.ncur += copy(t.cur[t.ncur:], p)
		return
	}
	for _, c := range p {
		if t.ncur == len(t.cur) {
			return
		}
		if c == '\r' || (c == '\n' && t.ncur == 0) {
			continue
		}
		t.cur[t.ncur] = c
		t.ncur++
	}
}

func onlyCR(p []byte) bool {
	for _, c := range p {
		if c != '\r' {
			return false
		}
	}
	return true
}

// EndedWithError reports whether the last whole event written was an error
// event (IsErrorEvent): the client has its error, and needs no other.
func (t *Tail) EndedWithError() bool { return IsErrorEvent(t.last[:t.nlast]) }

func (t *Tail) bytes() []byte { return t.b[:t.n] }

// AtBoundary reports whether the bytes so far end an event (or nothing was written).
func (t *Tail) AtBoundary() bool {
	b := t.bytes()
	return len(b) == 0 || bytes.HasSuffix(b, []byte("\n\n")) || bytes.HasSuffix(b, []byte("\r\n\r\n"))
}

// Done reports whether the stream ended with the data: [DONE] event.
func (t *Tail) Done() bool {
	b := bytes.TrimRight(t.bytes(), "\r\n")
	return bytes.HasSuffix(b, []byte("[DONE]"))
}

// FirstEvent reads from r into buf until buf holds one complete event (a
// blank line) or is full, and returns the bytes read. A read error other
// than io.EOF is returned with whatever was read.
func FirstEvent(r io.Reader, buf []byte) (int, error) {
	return Leading(r, buf, nil)
}

// Leading is FirstEvent that also reads past leading events for which
// skip returns true (such as Azure's prompt-filter chunk, which carries no
// choices), so that the first event that says something is in buf.
func Leading(r io.Reader, buf []byte, skip func(event []byte) bool) (int, error) {
	n := 0
	from := 0 // start of the first event not yet judged
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		for {
			i := EventEnd(buf[from:n])
			if i < 0 {
				break
			}
			if skip == nil || !skip(buf[from:from+i]) {
				return n, nil
			}
			from += i
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

// EventEnd returns the index just past the first event's terminating blank
// line in b, or -1.
func EventEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		j := bytes.Index(b, []byte("\r\n\r\n"))
		if j >= 0 && j+4 < i+2 {
			return j + 4
		}
		return i + 2
	}
	if j := bytes.Index(b, []byte("\r\n\r\n")); j >= 0 {
		return j + 4
	}
	return -1
}

// HasErrorEvent reports whether any whole event in b carries an error.
func HasErrorEvent(b []byte) bool {
	for len(b) > 0 {
		i := EventEnd(b)
		if i < 0 {
			i = len(b)
		}
		if IsErrorEvent(b[:i]) {
			return true
		}
		b = b[i:]
	}
	return false
}

// IsErrorEvent reports whether the first event in b carries an error: an
// "event: error" line or a data object with a top-level "error" key.
func IsErrorEvent(b []byte) bool {
	end := EventEnd(b)
	if end >= 0 {
		b = b[:end]
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, "\r")
		switch {
		case bytes.HasPrefix(line, []byte("event:")):
			if string(bytes.TrimSpace(line[len("event:"):])) == "error" {
				return true
			}
		case bytes.HasPrefix(line, []byte("data:")):
			d := bytes.TrimSpace(line[len("data:"):])
			if bytes.HasPrefix(d, []byte("{")) && bytes.HasPrefix(bytes.TrimLeft(d[1:], " \t\r\n"), []byte(`"error"`)) {
				return true
			}
		}
	}
	return false
}

// Writer is what the relay writes to: an http.ResponseWriter that flushes.
type Writer interface {
	io.Writer
	http.Flusher
}

// ErrPartialEvent is Copy's error for an upstream that ended cleanly (io.EOF)
// inside an event. It wraps io.ErrUnexpectedEOF.
var ErrPartialEvent = fmt.Errorf("stream ended inside an event: %w", io.ErrUnexpectedEOF)

// Copy relays src to dst event by event until src ends: it writes only
// whole events (up to the last blank line read so far) and flushes after
// each write, so a client never sees half an event, even when the upstream
// breaks. An event larger than buf is passed through in pieces (all but
// its last 3 bytes while no blank line is in sight). buf[:pre] holds bytes
// already read from src and not yet written. When src is a Waiter, buf goes
// back to the pool whenever no event is pending and src has nothing to read
// (pre bytes read before are still written first). What dst holds before
// the call (a response head) is flushed with the first whole events in
// buf[:pre], or alone before the first read. Copy calls onRead after each
// successful read (e.g. to extend an idle deadline) and records what was
// written in tail.
//
// It returns the bytes written and the first read or write error. When src
// ends, the bytes after the last blank line never reach dst: at io.EOF they
// are an unfinished event, and Copy returns ErrPartialEvent (so a caller
// ends the client's stream with an error event, as for any other read
// error), unless they hold nothing a client would act on (only blank or
// whitespace lines and ":" comments, such as a stray trailing newline) and
// no piece of an event larger than buf went out before them: then src ended
// cleanly and the error is nil. So dst gets nothing after the stream's last
// whole event, except pieces of an event larger than buf (which then always
// ends in a non-nil error).
func Copy(dst Writer, src io.Reader, buf *Buf, pre int, tail *Tail, onRead func()) (int64, error) {
	return CopyFiltered(dst, src, buf, pre, tail, Filter{OnRead: onRead})
}

// Filter observes and trims a relayed stream. Zero fields do nothing.
type Filter struct {
	// Tap sees every byte read from the upstream (before Drop).
	Tap io.Writer
	// Drop, when it returns true for a whole event, keeps it from the client.
	Drop func(event []byte) bool
	// Trim may shorten an event in place (returning a prefix of it) before
	// it is written; it runs only with Drop.
	Trim func(event []byte) []byte
	// OnRead is called after each successful read.
	OnRead func()
}

// CopyFiltered is Copy with a Filter.
func CopyFiltered(dst Writer, src io.Reader, b *Buf, pre int, tail *Tail, f Filter) (int64, error) {
	var written int64
	buf := b.Bytes()
	waiter, _ := src.(Waiter)
	off := pre
	if f.Tap != nil && pre > 0 {
		_, _ = f.Tap.Write(buf[:pre])
	}
	put := func(p []byte) error {
		w, werr := dst.Write(p)
		written += int64(w)
		tail.Add(p[:w])
		if werr != nil {
			return &WriteError{Err: werr}
		}
		return nil
	}
	write := func(end int) error {
		var err error
		if f.Drop == nil {
			err = put(buf[:end])
		} else {
			for ev := buf[:end]; len(ev) > 0 && err == nil; {
				n := EventEnd(ev)
				if n < 0 {
					n = len(ev)
				}
				if !f.Drop(ev[:n]) {
					out := ev[:n]
					if f.Trim != nil {
						out = f.Trim(out)
					}
					err = put(out)
				}
				ev = ev[n:]
			}
		}
		if err != nil {
			return err
		}
		dst.Flush()
		off = copy(buf, buf[end:off])
		return nil
	}
	// Whatever dst holds (the response head, written just before) goes out
	// with the first whole events, or alone before the first read.
	if end := lastBoundary(buf[:off]); off > 0 && end > 0 {
		if err := write(end); err != nil {
			return written, err
		}
	} else {
		dst.Flush()
	}
	inside := false // a piece of the pending event has been written
	for {
		if off == len(buf) {
			// An event larger than buf: pass it through, keeping back the 3
			// bytes that may begin the blank line ending it, so that blank
			// line is found whole in buf.
			if err := write(max(off-3, 1)); err != nil {
				return written, err
			}
			inside = true
		}
		if off == 0 && waiter != nil {
			b.Release()
			_ = waiter.Wait()
			buf = b.Bytes()
		}
		n, rerr := src.Read(buf[off:])
		if n > 0 {
			if f.OnRead != nil {
				f.OnRead()
			}
			if f.Tap != nil {
				_, _ = f.Tap.Write(buf[off : off+n])
			}
			prev := off
			off += n
			// Only the new bytes (and the 3 before them) can hold a new boundary.
			if end := lastBoundaryFrom(buf[:off], max(prev-3, 0)); end > 0 {
				if err := write(end); err != nil {
					return written, err
				}
				inside = false
			}
		}
		if rerr != nil {
			// Every whole event is written: buf[:off] is what src left
			// unfinished, and it is dropped.
			if !errors.Is(rerr, io.EOF) {
				return written, rerr
			}
			if inside || !inert(buf[:off]) {
				return written, ErrPartialEvent
			}
			return written, nil
		}
	}
}

// inert reports whether b, bytes after the last event, holds nothing an SSE
// client acts on: only empty or whitespace lines and comments (":").
func inert(b []byte) bool {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > 0 && line[0] != ':' && len(bytes.Trim(line, " \t")) > 0 {
			return false
		}
	}
	return true
}

// lastBoundaryFrom is lastBoundary for a boundary that ends after from.
func lastBoundaryFrom(b []byte, from int) int {
	if endsEvent(b[from:]) { // the usual read: whole events
		return len(b)
	}
	i := bytes.LastIndex(b[from:], []byte("\n\n"))
	if i >= 0 {
		i += from + 2
	}
	if bytes.IndexByte(b[from:], '\r') >= 0 {
		if j := bytes.LastIndex(b[from:], []byte("\r\n\r\n")); j >= 0 && from+j+4 > i {
			i = from + j + 4
		}
	}
	return i
}

// endsEvent reports whether b ends with a blank line.
func endsEvent(b []byte) bool {
	n := len(b)
	return n >= 2 && b[n-1] == '\n' && (b[n-2] == '\n' || n >= 4 && b[n-2] == '\r' && b[n-3] == '\n' && b[n-4] == '\r')
}

// lastBoundary returns the index just past the last blank line in b, or -1.
func lastBoundary(b []byte) int { return lastBoundaryFrom(b, 0) }

// WriteError is a failure to write to the client (the client went away).
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write to client: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// ErrorEvent returns an SSE event carrying an error in the OpenAI error
// shape; if the stream is not at an event boundary, it first ends the
// partial event so the client's parser sees the error as its own event.
func ErrorEvent(tail *Tail, message, code string) []byte {
	var b bytes.Buffer
	if !tail.AtBoundary() {
		b.WriteString("\n\n")
	}
	b.WriteString(`data: {"error":{"message":`)
	b.WriteString(quote(message))
	b.WriteString(`,"type":"server_error","param":null,"code":`)
	b.WriteString(quote(code))
	b.WriteString("}}\n\n")
	return b.Bytes()
}

func quote(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
