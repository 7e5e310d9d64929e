package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/internal/api/openai"
)

// Server serves an http.Handler over HTTP/1.1: keep-alive,
// pipelining, chunked and length-framed bodies both ways, Expect:
// 100-continue, flushes, the read-header and idle timeouts, a request
// context cancelled when the client goes away, and a graceful drain. Its
// listener's connections are plain TCP or TLS whose handshake is done
// (package tlsmux; the request's TLS field is set); it serves no HTTP/2,
// which stays with net/http's http.Server.
//
// What it saves over http.Server is per connection and per request: no
// background reader goroutine (a client leaving is noticed by the watcher:
// one epoll set for the process on Linux, for requests running longer than
// watchAfter), no read buffer held while a handler runs past its body, and
// no write buffer held between two flushes of a stream.
//
// The zero value serves Handler with the defaults documented on each field.
// Fields must not change after Serve is called. Safe for concurrent use.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's head, from its first
	// byte (for a connection's first request, from the accept). A head
	// begun but not done in time is answered with 408 and a JSON error
	// body; a connection on which no request began is closed without a
	// word. Zero: 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Zero: ReadHeaderTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's head; a larger one is answered
	// with 431 and a JSON error body. Zero: 1 MiB.
	MaxHeaderBytes int
	// ErrorLog gets handler panics (other than http.ErrAbortHandler) and
	// accept errors. Nil: the log package's standard logger.
	ErrorLog *log.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*srvConn]struct{}
	shutdown  atomic.Bool
}

// watchAfter is how long a handler runs before its connection is watched
// for the client going away (most answers are done sooner and never are).
const watchAfter = 20 * time.Millisecond

// maxDiscard is the most of a request body left unread by its handler that
// is read and dropped to keep the connection; more closes it.
const maxDiscard = 256 << 10

// errRequestHeadTooLarge ends a request head longer than MaxHeaderBytes.
var errRequestHeadTooLarge = errors.New("h1: request headers larger than the limit")

// errClientGone cancels a request's context when its client closed the
// connection or a write to it failed.
var errClientGone = errors.New("h1: client connection closed")

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return 10 * time.Second
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.readHeaderTimeout()
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return 1 << 20
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or Close, after which it returns http.ErrServerClosed.
// It closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln, true) {
		return http.ErrServerClosed
	}
	defer s.track(ln, false)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("h1: accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		nc = fastConn(nc)
		c := &srvConn{srv: s, nc: nc, accepted: time.Now()}
		c.rdl.nc = nc
		c.src.rd = &c.rdl
		c.src.left = -1
		if !s.trackConn(c, true) {
			_ = nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// track adds or removes a listener; it refuses to add one after Shutdown.
func (s *Server) track(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		if _, ok := s.listeners[ln]; ok {
			delete(s.listeners, ln)
			_ = ln.Close()
		}
		return true
	}
	if s.shutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) trackConn(c *srvConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.shutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*srvConn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

// Shutdown stops accepting, closes idle connections, and waits for every
// request in flight (streams included) to end, each connection closing
// after its answer. It returns ctx's error when ctx ends first, leaving
// the rest open (Close cuts them).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.closeListeners()
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 100*time.Millisecond)
			t.Reset(wait)
		}
	}
}

// CancelRequests cancels the context of every request in flight with
// cause (context.Cause tells it from a client that left). Their
// connections stay open: a handler can still answer, or end its stream
// with a word of why. A server shutting down past its grace period calls
// it, then Shutdown again for a short while, then Close.
func (s *Server) CancelRequests(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.cancelRequest(cause)
	}
}

// Close stops accepting, closes every connection now and cancels the
// requests still running on them.
func (s *Server) Close() error {
	s.shutdown.Store(true)
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		_ = c.nc.Close()
		c.cancelRequest(http.ErrServerClosed) // what a handler still waits for is of no use now
	}
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		_ = ln.Close()
		delete(s.listeners, ln)
	}
}

// closeIdle closes the connections waiting for a request (and those that
// have sent nothing for 5 s since their accept), and reports whether none
// are left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) ||
			(time.Since(c.accepted) > 5*time.Second && c.state.CompareAndSwap(stateNew, stateClosed)) {
			_ = c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// A connection's states (srvConn.state).
const (
	stateNew    int32 = iota // accepted, no request yet
	stateActive              // reading or answering a request
	stateIdle                // waiting for the next request
	stateClosed              // closed by Shutdown or Close
)

// srvConn is one client connection, served by one goroutine.
type srvConn struct {
	srv      *Server
	nc       net.Conn
	accepted time.Time
	remote   string
	tls      *tls.ConnectionState // nil on a plain connection
	state    atomic.Int32
	rdl      readDeadline  // nc's read deadline, set lazily
	src      source        // what br reads from
	br       *bufio.Reader // from readerPool; nil while a handler runs past its body
	body     reqBody       // the current request's body (reused)
	fixed    fixedBody     // body.rc for a head fastRequest parsed (reused)
	resp     response      // the current request's answer (reused)
	hdr      http.Header   // resp's header map (reused, cleared)
	cmu      sync.Mutex    // guards cancel
	cancel   context.CancelCauseFunc
	watch    watcher
	broken   atomic.Bool // a write failed or the client left: no next request
	gone     atomic.Bool // the client closed its side: no next request
	linger   bool        // close after the client stops sending (unread request data)
	unsure   bool        // the request's framing could not be fully checked: close after it
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// source is the reader under a connection's bufio.Reader: a byte the
// watcher read ahead (the start of a pipelined request), then the
// connection, bounded while a head is read.
type source struct {
	rd     *readDeadline
	pre    byte
	hasPre bool
	left   int64 // < 0: no bound
	reads  int   // reads from nc (counted while a head is read)
	err    error // the first read error from nc (noted while a head is read)
}

func (s *source) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.hasPre {
		s.hasPre = false
		p[0] = s.pre
		if s.left > 0 {
			s.left--
		}
		return 1, nil
	}
	if s.left == 0 {
		return 0, errRequestHeadTooLarge
	}
	if s.left > 0 && int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.rd.Read(p)
	s.reads++
	if s.left > 0 {
		s.left -= int64(n)
	}
	if err != nil && s.err == nil && s.left >= 0 {
		s.err = err
	}
	return n, err
}

func (c *srvConn) serve() {
	defer c.close()
	if ra := c.nc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState() // complete: tlsmux hands a connection over after its handshake
		c.tls = &st
	}
	c.watch.c = c
	for first := true; ; first = false {
		req, ok := c.readRequest(first)
		if !ok {
			return
		}
		if !c.serveRequest(req) {
			return
		}
	}
}

// lingerFor bounds how long a closing connection keeps reading what the
// client still sends, so that its answer is not lost to a reset.
const lingerFor = 500 * time.Millisecond

func (c *srvConn) close() {
	c.watch.stop()
	if c.linger && !c.broken.Load() {
		c.lingerClose()
	}
	c.putReader()
	c.state.Store(stateClosed)
	_ = c.nc.Close()
	c.srv.trackConn(c, false)
}

// lingerClose half-closes the connection and reads (and drops) what the
// client still sends until it closes too or lingerFor passes: closing with
// unread data would reset the connection, and a reset can discard the
// answer before the client reads it.
func (c *srvConn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.rdl.Set(time.Now().Add(lingerFor))
	var buf [512]byte
	for {
		if _, err := c.rdl.Read(buf[:]); err != nil {
			return
		}
	}
}

// readRequest waits for and reads the next request's head. It answers a
// malformed one itself; false ends the connection.
func (c *srvConn) readRequest(first bool) (*http.Request, bool) {
	s := c.srv
	if first {
		_ = c.rdl.Set(c.accepted.Add(s.readHeaderTimeout()))
	} else {
		if !c.state.CompareAndSwap(stateActive, stateIdle) || s.shutdown.Load() {
			return nil, false
		}
		_ = c.rdl.Set(time.Now().Add(s.idleTimeout()))
	}
	if c.br == nil {
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset(&c.src)
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, false
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) && !c.state.CompareAndSwap(stateNew, stateActive) {
		return nil, false // closed by Shutdown
	}
	if !first {
		_ = c.rdl.Set(time.Now().Add(s.readHeaderTimeout()))
	}
	c.src.left = int64(s.maxHeaderBytes()) + 4096 - int64(c.br.Buffered())
	if c.src.left <= 0 {
		c.src.left = 1
	}
	// The head as it arrived: http.ReadRequest drops the Host and (for a
	// chunked request) Content-Length headers that checkRequest looks for.
	// Valid while no read refilled the buffer.
	raw, _ := c.br.Peek(c.br.Buffered())
	c.src.reads, c.src.err = 0, nil
	req, err := c.parseRequest(raw)
	c.src.left = -1
	if c.src.reads > 0 {
		raw = nil
	}
	if err != nil {
		// A failed read cut the head short: its error is the cause, even
		// when the parse calls the cut line malformed (a partial last line
		// reads as a whole one).
		cut := c.src.err
		var ne net.Error
		switch {
		case errors.Is(err, errRequestHeadTooLarge):
			c.linger = true
			c.reject(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "The request headers are larger than the server's limit.")
		case errors.As(cut, &ne) && ne.Timeout():
			// The head began but did not end within ReadHeaderTimeout (a
			// client idle before its first byte was closed silently above).
			// Linger: a slow client may still be sending, and a reset could
			// lose the answer.
			c.linger = true
			c.reject(http.StatusRequestTimeout, "request_timeout", "The request headers did not arrive within the server's time limit.")
		case cut != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			// The client left mid-head, or its connection failed: nothing
			// to answer.
		default:
			msg := err.Error()
			if len(msg) > 200 {
				msg = strings.ToValidUTF8(msg[:200], "") + "…" // it may quote the client's bytes
			}
			c.reject(http.StatusBadRequest, "invalid_request", "The request is not valid HTTP/1.1: "+msg+".")
		}
		return nil, false
	}
	_ = c.rdl.Set(time.Time{})
	var status int
	var msg string
	status, msg, c.unsure = checkRequest(req, raw)
	if status != 0 {
		c.reject(status, "invalid_request", msg)
		return nil, false
	}
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	return req, true
}

// parseRequest reads a request's head: a plain one already buffered (raw)
// is parsed by fastRequest; anything else by http.ReadRequest, from the
// same bytes.
func (c *srvConn) parseRequest(raw []byte) (*http.Request, error) {
	req, n, ok := fastRequest(raw)
	if !ok {
		return http.ReadRequest(c.br)
	}
	_, _ = c.br.Discard(n) // buffered: cannot fail
	if req.Body == nil {
		c.fixed = fixedBody{r: c.br, left: req.ContentLength}
		req.Body = &c.fixed
	}
	return req, nil
}

// checkRequest applies the rules net/http's server adds to the parse, and
// RFC 9112's on a request with both Content-Length and Transfer-Encoding
// (refused). raw is the head as received, nil when it is not at hand; then
// such a request is served and its connection closed after it (unsure).
func checkRequest(req *http.Request, raw []byte) (status int, msg string, unsure bool) {
	if req.ProtoMajor != 1 {
		return http.StatusHTTPVersionNotSupported, "Only HTTP/1.x is served on this connection.", false
	}
	switch {
	case req.Host == "" && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect && (raw == nil || !headHas(raw, "host")):
		return http.StatusBadRequest, "The request has no Host header.", false
	case req.Host != "" && !validHost(req.Host):
		return http.StatusBadRequest, "The request's Host header is malformed.", false
	}
	if len(req.TransferEncoding) > 0 {
		if raw == nil {
			unsure = true
		} else if headHas(raw, "content-length") {
			return http.StatusBadRequest, "The request has both Content-Length and Transfer-Encoding.", false
		}
	}
	// The parse (net/textproto) refuses a value with a control byte, but
	// lets a name end in a space ("X-A : b"), as net/http's server does not.
	for k := range req.Header {
		if !validName(k) {
			return http.StatusBadRequest, "The request has an invalid header name.", false
		}
	}
	if e := req.Header["Expect"]; len(e) > 0 && !(len(e) == 1 && strings.EqualFold(e[0], "100-continue")) {
		return http.StatusExpectationFailed, "The request's Expect header is not supported.", false
	}
	return 0, "", unsure
}

// headHas reports whether the head in raw (up to its blank line) has a
// header named name (lower case).
func headHas(raw []byte, name string) bool {
	for {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			return false
		}
		raw = raw[i+1:]
		if len(raw) == 0 || raw[0] == '\r' || raw[0] == '\n' {
			return false // the blank line: the head is over
		}
		if len(raw) > len(name) && raw[len(name)] == ':' && bytes.EqualFold(raw[:len(name)], []byte(name)) {
			return true
		}
	}
}

// rejectWriteFor bounds the write of reject's answer: a client that reads
// nothing holds its connection (and a Shutdown waiting for it) no longer.
const rejectWriteFor = time.Second

// reject answers a request the server refuses before any handler, in the
// OpenAI API's error shape, and leaves the connection to be closed.
func (c *srvConn) reject(status int, code, msg string) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(rejectWriteFor))
	_, _ = c.nc.Write(ErrorResponse(status, code, msg))
}

// ErrorResponse is a whole HTTP/1.1 response with the API's JSON error
// (type invalid_request_error, or server_error for a 5xx) that closes its
// connection: what the server answers a request it refuses.
func ErrorResponse(status int, code, msg string) []byte {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	body, _ := json.Marshal(openai.ErrorBody{Error: openai.Error{Message: msg, Type: typ, Code: code}})
	b := append(make([]byte, 0, 256+len(body)), "HTTP/1.1 "...)
	b = appendStatus(b, status)
	b = append(b, "Content-Type: application/json\r\nConnection: close\r\nContent-Length: "...)
	b = itoa(b, int64(len(body)))
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// serveRequest runs the handler for req and finishes its answer; it
// reports whether the connection can carry another request.
func (c *srvConn) serveRequest(req *http.Request) bool {
	ctx, cancel := context.WithCancelCause(context.Background())
	c.cmu.Lock()
	c.cancel = cancel
	c.cmu.Unlock()
	*req = *req.WithContext(ctx) // req is ours: no second Request on the heap
	// The answer and its header map are the connection's, reused from one
	// request to the next (a handler must not touch them once it returned).
	if c.hdr == nil {
		c.hdr = make(http.Header, 16)
	}
	w := &c.resp
	*w = response{c: c, req: req, header: c.hdr, contentLength: -1}
	defer clear(c.hdr)
	w.isHead = req.Method == http.MethodHead
	w.closeAfter = req.Close || !req.ProtoAtLeast(1, 1) || c.unsure
	c.body = reqBody{}
	if req.Body != nil && req.Body != http.NoBody {
		c.body.rc, c.body.w = req.Body, w
		c.body.expect = req.ProtoAtLeast(1, 1) && req.ContentLength != 0 && len(req.Header["Expect"]) > 0
		req.Body = &c.body
	} else {
		c.body.eof = true
	}
	c.watch.arm()
	if c.body.eof {
		c.bodyDone()
	}
	var aborted bool
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		w.header["Content-Length"] = []string{"0"} // the server's own answer, as net/http's
	} else {
		aborted = c.runHandler(w, req)
	}
	c.watch.stop()
	cancel(context.Canceled)
	if aborted || c.broken.Load() {
		return false
	}
	w.finish()
	if w.closeAfter || c.broken.Load() || c.gone.Load() {
		c.linger = !c.body.eof
		return false
	}
	return c.drainBody()
}

// runHandler calls the handler, turning a panic into an aborted answer:
// the connection closes without ending the body, so the client sees it cut.
func (c *srvConn) runHandler(w *response, req *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			aborted = true
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logf("h1: panic serving %s: %v\n%s", c.remote, v, buf)
			}
			w.release()
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return false
}

// bodyDone runs once the request body is read to its end (or there is
// none): the read buffer goes back to its pool unless it holds the start of
// a pipelined request.
func (c *srvConn) bodyDone() {
	if c.br != nil && c.br.Buffered() > 0 {
		return
	}
	c.putReader()
	c.watch.bodyRead()
}

// putReader gives the read buffer back to its pool.
func (c *srvConn) putReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
}

// drainBody reads and drops what the handler left of the request body, up
// to maxDiscard, as net/http does, and reports whether the connection can
// be reused: not when more is left, when the declared length says so
// (then nothing is read: an answer is not held for a body it drops), or
// when the client still waits for a 100 Continue.
func (c *srvConn) drainBody() bool {
	b := &c.body
	if b.eof {
		return true
	}
	c.linger = true
	if b.expect {
		return false // the client waits for a 100 Continue that never came
	}
	if cl := b.w.req.ContentLength; cl >= 0 && cl-b.read > maxDiscard {
		return false // more is declared than is worth waiting for: not read at all
	}
	_ = c.rdl.Set(time.Now().Add(c.srv.readHeaderTimeout()))
	n, err := io.CopyN(io.Discard, b.rc, maxDiscard+1)
	_ = c.rdl.Set(time.Time{})
	if err == io.EOF && n <= maxDiscard {
		c.linger = false
		b.eof = true
		return true
	}
	return false
}

// reqBody is a request's body as its handler sees it: it answers Expect:
// 100-continue on the first read and notes the end.
type reqBody struct {
	rc     io.ReadCloser
	w      *response
	expect bool // Expect: 100-continue, not yet answered
	eof    bool
	read   int64 // bytes the handler read
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		if !b.w.committed {
			if _, err := b.w.c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
				b.w.c.fail()
				return 0, err
			}
		}
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	switch {
	case err == io.EOF:
		b.eof = true
		b.w.c.bodyDone()
	case err != nil:
		b.w.closeAfter = true // a malformed or cut body: the connection cannot go on
	}
	return n, err
}

// Close leaves the rest of the body to the server, which reads it to keep
// the connection or closes the connection.
func (b *reqBody) Close() error { return nil }

// peerClosed cancels the request in flight when the client closed its side
// of the connection (it may only have half-closed, and still read the
// answer: writes go on, but no request follows).
func (c *srvConn) peerClosed() {
	c.gone.Store(true)
	c.cancelRequest(errClientGone)
}

// fail marks the connection broken (a write failed) and cancels the
// request in flight.
func (c *srvConn) fail() {
	c.broken.Store(true)
	c.cancelRequest(errClientGone)
}

// cancelRequest cancels the context of the request in flight (or of the
// last one, which ended already: then it does nothing) with cause.
func (c *srvConn) cancelRequest(cause error) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.cancel != nil {
		c.cancel(cause)
	}
}
