package h1

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of one request. Its head is written
// with the first bytes of its body: an answer its handler ends without a
// flush goes out in one write with a Content-Length; one flushed before it
// ends is chunked (or, to an HTTP/1.0 client, ended by closing). Between
// flushes it holds no buffer. It also answers http.ResponseController's
// Flush, SetReadDeadline and SetWriteDeadline.
type response struct {
	c             *srvConn
	req           *http.Request
	header        http.Header
	out           []byte // pending bytes for the wire (from bufPool), nil when none
	status        int
	contentLength int64 // from the handler's Content-Length header; -1: none
	written       int64 // body bytes the handler wrote
	wroteHeader   bool
	committed     bool // the head is in out or on the wire
	chunked       bool
	isHead        bool
	closeAfter    bool
}

const bufSize = 4096

// bufPool holds *[bufSize]byte: a slice of one converts back to its array
// pointer without allocating.
var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

func getBuf() []byte { return bufPool.Get().(*[bufSize]byte)[:0] }

func putBuf(b []byte) {
	if cap(b) != bufSize {
		return // grown past the pool's size
	}
	bufPool.Put((*[bufSize]byte)(b[:bufSize]))
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header["Content-Length"]; len(cl) > 0 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

// writeInterim sends a 1xx answer (103 Early Hints with the headers set so
// far) ahead of the final one.
func (w *response) writeInterim(code int) {
	if w.committed || w.c.broken.Load() {
		return
	}
	b := appendStatus(append(getBuf(), "HTTP/1.1 "...), code)
	if code != http.StatusContinue {
		b = appendHeaders(b, w.header)
	}
	b = append(b, "\r\n"...)
	w.c.write(b)
	putBuf(b)
}

// bodyAllowed reports whether a status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.c.broken.Load() {
		return 0, errClientGone
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.committed && w.written == 0 && (w.isHead || len(p) > bufSize) {
		w.sniff(p) // these bytes are never buffered ahead of the head
	}
	w.written += int64(len(p))
	if w.isHead {
		return len(p), nil
	}
	if !w.committed {
		if w.out == nil {
			w.out = getBuf()
		}
		if len(w.out)+len(p) <= cap(w.out) {
			w.out = append(w.out, p...) // body bytes ahead of their head
			return len(p), nil
		}
		w.commit(false)
	}
	return w.writeBody(p)
}

// writeBody frames p after the head is committed.
func (w *response) writeBody(p []byte) (int, error) {
	if w.out == nil {
		w.out = getBuf()
	}
	extra := 0
	if w.chunked {
		extra = 20
	}
	if len(w.out)+len(p)+extra > cap(w.out) {
		if len(w.out) > 0 && !w.flushOut() {
			return 0, errClientGone
		}
		if len(p)+extra > cap(w.out) {
			// Larger than the buffer: its frame head, then p itself.
			if w.chunked {
				w.out = appendChunkHead(w.out, len(p))
				if !w.flushOut() {
					return 0, errClientGone
				}
			}
			if !w.c.write(p) {
				return 0, errClientGone
			}
			if w.chunked {
				w.out = append(w.out, "\r\n"...)
			}
			return len(p), nil
		}
	}
	if w.chunked {
		w.out = appendChunkHead(w.out, len(p))
		w.out = append(append(w.out, p...), "\r\n"...)
	} else {
		w.out = append(w.out, p...)
	}
	return len(p), nil
}

// Flush sends what is pending (the head first) and lets go of the buffer.
func (w *response) Flush() { _ = w.FlushError() }

func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.c.broken.Load() {
		return errClientGone
	}
	if !w.committed {
		w.commit(false)
	}
	ok := len(w.out) == 0 || w.flushOut()
	w.release()
	if !ok {
		return errClientGone
	}
	return nil
}

// release gives the write buffer back to its pool.
func (w *response) release() {
	if w.out != nil {
		putBuf(w.out)
		w.out = nil
	}
}

func (w *response) SetReadDeadline(t time.Time) error { return w.c.rdl.Set(t) }

func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// flushOut writes out and empties it.
func (w *response) flushOut() bool {
	ok := w.c.write(w.out)
	w.out = w.out[:0]
	return ok
}

// write writes b to the connection; a failure marks the connection broken
// and cancels the request.
func (c *srvConn) write(b []byte) bool {
	if c.broken.Load() {
		return false
	}
	if _, err := c.nc.Write(b); err != nil {
		c.fail()
		return false
	}
	return true
}

// commit puts the head in front of the body bytes buffered so far. final:
// the handler has returned, so the body is exactly what is buffered.
func (w *response) commit(final bool) {
	w.committed = true
	body := w.out
	h := w.header
	allowed := bodyAllowed(w.status)
	delete(h, "Transfer-Encoding") // the framing is this writer's
	for _, v := range h["Connection"] {
		w.closeAfter = w.closeAfter || hasToken(v, "close")
	}
	delete(h, "Connection")
	if w.c.srv.shutdown.Load() {
		w.closeAfter = true
	}
	if !w.closeAfter && !w.c.body.eof {
		// A request body the handler left unread is dropped now (see
		// drainBody): when it cannot be, the connection closes after this
		// answer, and the head says so, so that a client's pool does not
		// send its next request on it.
		w.closeAfter = !w.c.drainBody()
	}
	switch {
	case !allowed:
	case w.contentLength >= 0:
	case final && (!w.isHead || w.written > 0):
		// All of it is buffered (or, for HEAD, was written and dropped).
		w.contentLength = w.written
		h["Content-Length"] = []string{strconv.FormatInt(w.written, 10)}
	case w.isHead:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if allowed {
		w.sniff(body)
	}
	b := appendStatus(append(getBuf(), "HTTP/1.1 "...), w.status)
	if _, ok := h["Date"]; !ok {
		b = append(append(append(b, "Date: "...), httpDate()...), "\r\n"...)
	}
	b = appendHeaders(b, h)
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if len(body) > 0 {
		if w.chunked {
			b = appendChunkHead(b, len(body))
			b = append(append(b, body...), "\r\n"...)
		} else {
			b = append(b, body...)
		}
	}
	if body != nil {
		putBuf(body)
	}
	w.out = b
}

// sniff sets the Content-Type the handler did not set from the body's
// first bytes, as net/http does.
func (w *response) sniff(p []byte) {
	if len(p) == 0 {
		return
	}
	if _, ok := w.header["Content-Type"]; !ok {
		w.header["Content-Type"] = []string{http.DetectContentType(p)}
	}
}

// finish ends the answer after its handler returned.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		if w.out == nil {
			w.out = getBuf()
		}
		w.out = append(w.out, "0\r\n\r\n"...)
	}
	if len(w.out) > 0 {
		w.flushOut()
	}
	w.release()
	if w.contentLength >= 0 && w.written < w.contentLength && !w.isHead && bodyAllowed(w.status) {
		w.closeAfter = true // shorter than announced: only closing ends it
	}
}

// appendChunkHead appends the size line of an n-byte chunk.
func appendChunkHead(b []byte, n int) []byte {
	return append(strconv.AppendInt(b, int64(n), 16), "\r\n"...)
}

// appendStatus appends "NNN Reason\r\n".
func appendStatus(b []byte, code int) []byte {
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if t := http.StatusText(code); t != "" {
		b = append(b, t...)
	} else {
		b = append(append(b, "status code "...), strconv.Itoa(code)...)
	}
	return append(b, "\r\n"...)
}

// appendHeaders appends h, skipping invalid names and turning line breaks
// in values into spaces so that no value can split the answer.
func appendHeaders(b []byte, h http.Header) []byte {
	for k, vs := range h {
		if !validName(k) {
			continue
		}
		for _, v := range vs {
			b = append(append(b, k...), ": "...)
			if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
				b = append(b, v...)
			} else {
				for i := 0; i < len(v); i++ {
					c := v[i]
					if c == '\r' || c == '\n' {
						c = ' '
					}
					b = append(b, c)
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// hasToken reports whether the comma-separated list v holds tok (any case).
func hasToken(v, tok string) bool {
	for f := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(f), tok) {
			return true
		}
	}
	return false
}

// dateCache holds the Date header of the current second.
type dateCache struct {
	sec int64
	val string
}

var date atomic.Pointer[dateCache]

func httpDate() string {
	now := time.Now()
	if d := date.Load(); d != nil && d.sec == now.Unix() {
		return d.val
	}
	d := &dateCache{sec: now.Unix(), val: now.UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.val
}
