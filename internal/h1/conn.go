package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one upstream connection. It is used by one request at a time.
type conn struct {
	t         *Transport
	h         *host
	nc        net.Conn
	lr        limitReader // what br reads from: nc, bounded while a head is read
	br        *bufio.Reader
	idleSince time.Duration // mono() when it went idle
	reused    bool
	interrupt func() // puts nc's deadline in the past (made once: a request's cancellation calls it)
}

// maxHeadBytes bounds what is read for a response's head (interim answers
// included), so an upstream sending endless headers cannot exhaust memory.
const maxHeadBytes = 1 << 20

// ErrBadResponse wraps the error of an answer whose head is not valid
// HTTP/1.1 (or is too large): the upstream was reached, and answered with
// something no client could use.
var ErrBadResponse = errors.New("h1: the upstream's answer is not valid HTTP/1.1")

// ioFailure reports whether err is the connection's (a read or write that
// failed, a connection that ended, a cancelled request) rather than the
// answer's.
func ioFailure(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ioCause is a read error as the cause of a cut head: io.EOF there is an
// unexpected end.
func ioCause(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errHeadTooLarge ends a response head longer than maxHeadBytes.
var errHeadTooLarge = errors.New("h1: upstream response headers larger than 1 MiB")

// limitReader reads from r, at most left bytes while left ≥ 0. While a
// head is read (left ≥ 0) it reads through a pooled staging buffer, so that
// a head and the body after it arrive in one read however small the
// bufio.Reader above is; the staging buffer goes back to its pool as soon
// as it is drained. Body reads go straight to the caller, so a stream
// waiting for its next event holds only the small bufio buffer.
type limitReader struct {
	r     io.Reader
	left  int64 // < 0: no limit
	stage []byte
	off   int
	err   error // r's error after the bytes staged with it
	ended error // the first error of r that Read returned while a head was read
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left == 0 {
		return 0, errHeadTooLarge
	}
	if l.left > 0 && int64(len(p)) > l.left {
		p = p[:l.left]
	}
	if l.stage == nil && l.left > 0 && len(p) < bufSize {
		l.fill()
	}
	var n int
	var err error
	if l.stage != nil {
		n = copy(p, l.stage[l.off:])
		err = l.skip(n)
	} else {
		n, err = l.r.Read(p)
	}
	if l.left > 0 {
		l.left -= int64(n)
	}
	if err != nil && l.left >= 0 && l.ended == nil {
		l.ended = err
	}
	return n, err
}

// fill reads what r has (up to bufSize) into a staging buffer, which Read
// then serves, and returns the staged bytes; r's error, if any, comes after
// them (l.err). There must be no stage.
func (l *limitReader) fill() []byte {
	b := getBuf()
	m, err := l.r.Read(b[:bufSize])
	return l.staged(b, m, err)
}

// staged makes b[:n], read from r with err, the staging buffer (b is
// getBuf's, and goes back to its pool once drained) and returns it.
func (l *limitReader) staged(b []byte, n int, err error) []byte {
	l.stage, l.off, l.err = b[:n], 0, err
	return l.stage
}

// skip consumes n staged bytes. Once all are, the staging buffer goes back
// to its pool and r's error that came with them is returned.
func (l *limitReader) skip(n int) error {
	l.off += n
	if l.off < len(l.stage) {
		return nil
	}
	err := l.err
	putBuf(l.stage)
	l.stage, l.off, l.err = nil, 0, nil
	return err
}

// nothingWritten wraps a failure to write a request of which no byte left.
type nothingWritten struct{ err error }

func (e nothingWritten) Error() string { return e.err.Error() }
func (e nothingWritten) Unwrap() error { return e.err }

// maxInline is the largest body sent in the same write as the head.
const maxInline = 256 << 10

var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// aLongTimeAgo is a deadline in the past: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes head (with the body when inline) and, when not inline,
// req's body, then reads the response's head. On success the body owns the
// connection and returns it to the pool when read to its end; on error the
// connection is closed.
func (c *conn) roundTrip(ctx context.Context, req *http.Request, head []byte, inline bool, headerTimeout time.Duration) (*http.Response, error) {
	// A cancelled context interrupts whatever I/O is blocked on the connection.
	stop := context.AfterFunc(ctx, c.interrupt)
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	// A request that goes out in one write (the usual case) is written
	// inside the read of its answer (exchange), which spares a system call.
	if x, ok := c.nc.(exchanger); ok && inline {
		b := getBuf()
		n, written, err := x.exchange(ctx, head, b[:bufSize], headerTimeout)
		if !written {
			putBuf(b)
			return fail(err)
		}
		c.lr.staged(b, n, err)
	} else if err := c.send(ctx, req, head, inline, headerTimeout); err != nil {
		return fail(err)
	}
	c.lr.left, c.lr.ended = maxHeadBytes, nil
	resp, err := c.readResponse(req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(c.br, req) // an interim answer (100 Continue, 103 Early Hints)
	}
	c.lr.left = -1
	if err != nil {
		switch {
		case c.reused && errors.Is(err, io.EOF):
			err = fmt.Errorf("h1: upstream closed a kept-alive connection: %w", io.ErrUnexpectedEOF)
		case ioFailure(err):
		case c.lr.ended != nil:
			// The connection ended inside the head, which the parse may
			// take for a malformed last line: the connection's failure.
			err = fmt.Errorf("h1: upstream answer cut inside its head (%w): %w", err, ioCause(c.lr.ended))
		default:
			err = fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		return fail(err)
	}
	if headerTimeout > 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	reusable := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		c.release(stop, reusable)
		return resp, nil
	}
	b := &body{c: c, rc: resp.Body, ctx: ctx, stop: stop, reusable: reusable}
	switch {
	case resp.Body != nil: // parsed by http.ReadResponse, which framed it
	case resp.TransferEncoding != nil: // parsed by fastResponse: chunks follow
		b.chunked = chunkedBody{r: c.br, resp: resp}
		b.rc = &b.chunked
	default: // parsed by fastResponse: a known length follows
		b.fixed = fixedBody{r: c.br, left: resp.ContentLength}
		b.rc = &b.fixed
	}
	resp.Body = b
	return resp, nil
}

// readResponse reads a response's head. A plain head that arrives whole in
// the first read (staged in lr already when exchange made it) is parsed by
// fastResponse; anything else by http.ReadResponse, from the same bytes
// (staged in lr, so nothing read is lost or read twice).
func (c *conn) readResponse(req *http.Request) (*http.Response, error) {
	if c.br.Buffered() == 0 {
		head := c.lr.stage
		if head == nil {
			head = c.lr.fill()
		}
		if c.lr.err == nil {
			if resp, n, ok := fastResponse(head, req); ok {
				_ = c.lr.skip(n) // what is left is the body's start
				return resp, nil
			}
		}
	}
	return http.ReadResponse(c.br, req)
}

// send writes head and, when not inline, req's body, then starts the
// answer's time limit.
func (c *conn) send(ctx context.Context, req *http.Request, head []byte, inline bool, headerTimeout time.Duration) error {
	if n, err := c.nc.Write(head); err != nil {
		if n == 0 {
			err = nothingWritten{err}
		}
		return err
	}
	if !inline && req.Body != nil && req.Body != http.NoBody {
		n, err := io.Copy(c.nc, io.LimitReader(req.Body, req.ContentLength))
		if err == nil && n < req.ContentLength {
			err = fmt.Errorf("h1: request body is %d bytes, shorter than its ContentLength %d", n, req.ContentLength)
		}
		if err != nil {
			return err
		}
		_ = req.Body.Close() // a RoundTripper closes the body it sent
	}
	return startAnswerTimer(ctx, c.nc, headerTimeout)
}

// startAnswerTimer bounds the wait for a request's answer, once the request
// is written, to d (none when d is zero). A cancellation during the write
// put the connection's deadline in the past, and this may have moved it:
// the context's error, returned, tells.
func startAnswerTimer(ctx context.Context, nc net.Conn, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	_ = nc.SetReadDeadline(time.Now().Add(d))
	return ctx.Err()
}

// exchanger writes a request inside the read of its answer, a system call
// fewer than a write and a read (rawConn, on Linux; see its exchange).
type exchanger interface {
	exchange(ctx context.Context, w, r []byte, headerTimeout time.Duration) (n int, written bool, err error)
}

// release returns c to the pool when it can carry another request, else closes it.
func (c *conn) release(stop func() bool, reusable bool) {
	// stop reports false when the context's callback ran or is running:
	// the connection's deadline may be in the past, so it is not reused.
	// Bytes already buffered or staged past the response are nothing a
	// request asked for: such a connection is not reused either.
	if stop() && reusable && c.br.Buffered() == 0 && c.lr.stage == nil {
		c.t.put(c)
		return
	}
	_ = c.nc.Close()
}

// encode renders req's head into b and, when the body is small, the body
// after it (inline), so that a request goes out in one write and can be
// written again without its body being read again.
func encode(b []byte, req *http.Request) (_ []byte, inline bool, err error) {
	b, err = appendHead(b, req)
	if err != nil {
		return nil, false, err
	}
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength > maxInline {
		return b, false, nil
	}
	n := len(b)
	b = append(b, make([]byte, req.ContentLength)...)
	if _, err := io.ReadFull(req.Body, b[n:]); err != nil {
		return nil, false, fmt.Errorf("h1: reading the request body: %w", err)
	}
	_ = req.Body.Close()
	return b, true, nil
}

// appendHead appends req's request line and headers. Header names and
// values that could split the request are refused.
func appendHead(b []byte, req *http.Request) ([]byte, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	b = append(b, method...)
	b = append(b, ' ')
	uri := req.URL.RequestURI()
	if !validURI(uri) {
		return nil, errors.New("h1: invalid request URI")
	}
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHost(host) {
		return nil, fmt.Errorf("h1: invalid Host %q", host)
	}
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range req.Header {
		if ownHeader(k) {
			continue // framing and hop-by-hop: this transport writes its own
		}
		if !validName(k) {
			return nil, fmt.Errorf("h1: invalid header name %q", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return nil, fmt.Errorf("h1: invalid value for header %q", k)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if req.Body != nil && req.Body != http.NoBody {
		b = append(b, "Content-Length: "...)
		b = itoa(b, req.ContentLength)
		b = append(b, "\r\n"...)
	} else if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		b = append(b, "Content-Length: 0\r\n"...)
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

// validName reports whether k is an RFC 9110 token.
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte[k[i]] {
			return false
		}
	}
	return true
}

// tokenByte tells the bytes of an RFC 9110 token.
var tokenByte = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c)
	}
	return t
}()

// ownHeaders are the request headers this transport writes itself (framing)
// or never sends (hop-by-hop), in any letter case.
var ownHeaders = [...]string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Expect", "Trailer", "Te", "Upgrade", "Keep-Alive", "Proxy-Connection"}

func ownHeader(k string) bool {
	for _, o := range ownHeaders {
		if len(k) == len(o) && strings.EqualFold(k, o) {
			return true
		}
	}
	return false
}

// validURI reports whether uri is an origin-form request target: a path
// from "/" with no space or control character.
func validURI(uri string) bool {
	if !strings.HasPrefix(uri, "/") {
		return false
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether h is a host[:port] of RFC 3986's characters
// (a reg-name or an IP literal).
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~%!$&'()*+,;=:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether v has no control character but tab.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !valueByte(v[i]) {
			return false
		}
	}
	return true
}

// valueByte tells the bytes a header value may hold: tab, space, visible
// ASCII and obs-text (as the standard library's reader).
func valueByte(c byte) bool {
	return c == '\t' || (c >= ' ' && c != 0x7f)
}

// body is a response body read from its connection. Reading it to its end
// returns the connection to the pool; closing it early closes the connection.
type body struct {
	c        *conn
	rc       io.ReadCloser // the standard library's framing (length, chunked)
	ctx      context.Context
	stop     func() bool
	reusable bool
	state    atomic.Int32 // bodyOpen, bodyEOF, bodyFailed or bodyClosed
	err      error        // the read error that ended it (bodyFailed)
	fixed    fixedBody    // rc, for a length-framed head fastResponse parsed
	chunked  chunkedBody  // rc, for a chunked head fastResponse parsed
}

const (
	bodyOpen int32 = iota
	bodyEOF
	bodyFailed
	bodyClosed
)

func (b *body) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case bodyEOF:
		return 0, io.EOF
	case bodyFailed:
		return 0, b.err
	case bodyClosed:
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(bodyEOF, b.reusable)
	case err != nil:
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
		b.err = err
		if !b.finish(bodyFailed, false) {
			err = errBodyClosed
		}
	}
	return n, err
}

// Wait blocks until the connection has bytes for the body (or fails)
// without reading them: a relay waiting for a stream's next event need not
// hold a buffer (stream.Waiter). It returns at once when bytes are buffered
// or the body is over; a read error is left for the next Read to report.
func (b *body) Wait() error {
	if b.state.Load() != bodyOpen {
		return nil
	}
	_, err := b.c.br.Peek(1)
	return err
}

// Close ends the body; a body not read to its end closes the connection
// (nothing is drained).
func (b *body) Close() error {
	b.finish(bodyClosed, false)
	return nil
}

// finish moves an open body to state and releases its connection, once.
func (b *body) finish(state int32, reusable bool) bool {
	if !b.state.CompareAndSwap(bodyOpen, state) {
		return false
	}
	b.c.release(b.stop, reusable)
	return true
}

var errBodyClosed = errors.New("h1: read on closed response body")
