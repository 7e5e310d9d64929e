// Package h1 is llmgate's HTTP/1.1 over plain TCP, both sides.
//
// Transport is the upstream client for plain-HTTP/1.1 upstreams: an
// http.RoundTripper that keeps warm keep-alive connections like
// http.Transport does, without its two goroutines and channel hand-offs per
// connection. The request is written with one write, the response is parsed
// by the standard library (http.ReadResponse) and its body is read straight
// from the connection by the caller. Everything else — TLS upstreams (HTTP/2),
// proxies from the environment — goes to a fallback http.RoundTripper.
//
// Server serves an http.Handler to clients over plain HTTP/1.1 (TLS and
// HTTP/2 to clients stay with net/http's http.Server); see its doc.
package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper for http:// URLs. The zero value is not
// usable: build one with New. Safe for concurrent use.
type Transport struct {
	opts     Options
	dialer   net.Dialer
	mu       sync.RWMutex
	hosts    map[string]*host
	closed   atomic.Bool
	fallback http.RoundTripper
}

// Options configure a Transport.
type Options struct {
	// Fallback sends what this transport does not: https:// URLs and
	// requests an environment proxy applies to. Required.
	Fallback http.RoundTripper
	// Proxy tells which requests go through a proxy (and so to Fallback);
	// it is asked once per scheme and host. Nil: none do.
	Proxy func(*http.Request) (*url.URL, error)
	// DialTimeout bounds a TCP connect. Zero: no bound beyond the request's context.
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive period. Zero: the net package's default.
	KeepAlive time.Duration
	// ResponseHeaderTimeout bounds the wait for the response's headers once the
	// request is written. Zero: no bound beyond the request's context.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes keep-alive connections idle for longer. Zero: 90 s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept per host. Zero: 256.
	MaxIdleConnsPerHost int
}

// New returns a Transport.
func New(o Options) *Transport {
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 256
	}
	return &Transport{
		opts:     o,
		dialer:   net.Dialer{Timeout: o.DialTimeout, KeepAlive: o.KeepAlive},
		hosts:    make(map[string]*host),
		fallback: o.Fallback,
	}
}

// host is the idle pool of one host:port.
type host struct {
	addr     string
	viaProxy bool
	mu       sync.Mutex
	idle     []*conn // most recently used last
}

// errClosed is returned by a Transport that has been closed.
var errClosed = errors.New("h1: transport closed")

// RoundTrip sends req. http:// requests with a known or no body go over
// this transport's connections; anything else (https, a proxy, a URL with
// user info, which the fallback turns into Basic auth) goes to the fallback.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	if u == nil || u.Scheme != "http" || u.Host == "" || u.User != nil || (req.Body != nil && req.Body != http.NoBody && req.ContentLength <= 0) {
		return t.fallback.RoundTrip(req)
	}
	h := t.host(req)
	if h.viaProxy {
		return t.fallback.RoundTrip(req)
	}
	if t.closed.Load() {
		closeBody(req)
		return nil, errClosed
	}
	bp := headPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			headPool.Put(bp)
		}
	}()
	head, inline, err := encode((*bp)[:0], req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if head != nil {
		*bp = head[:0]
	}
	ctx := req.Context()
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, err
		}
		c, err := t.get(ctx, h)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := c.roundTrip(ctx, req, head, inline, t.opts.ResponseHeaderTimeout)
		if err == nil {
			return resp, nil
		}
		var nw nothingWritten
		if try == 0 && c.reused && errors.As(err, &nw) && ctx.Err() == nil {
			// A kept-alive connection the upstream had closed: nothing was
			// sent, so send it once more on a new connection.
			continue
		}
		closeBody(req)
		return nil, err
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// host returns the pool for req's host, creating it on first use.
func (t *Transport) host(req *http.Request) *host {
	addr := req.URL.Host
	t.mu.RLock()
	h := t.hosts[addr]
	t.mu.RUnlock()
	if h != nil {
		return h
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h = t.hosts[addr]; h != nil {
		return h
	}
	h = &host{addr: hostPort(req.URL)}
	if t.opts.Proxy != nil {
		if p, err := t.opts.Proxy(req); err != nil || p != nil {
			h.viaProxy = true
		}
	}
	t.hosts[addr] = h
	return h
}

// hostPort is u's host with the default port made explicit.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// readBufSize is a connection's read buffer: room for an SSE event and a
// chunk line (a head arrives through limitReader's staging buffer, larger
// body reads go straight to the caller's buffer). Small, because a held
// stream keeps it.
const readBufSize = 512

// clockBase is the origin of mono.
var clockBase = time.Now()

// mono reads the monotonic clock only (time.Now reads the wall clock too).
func mono() time.Duration { return time.Since(clockBase) }

// staleCheckAfter is how long a connection sits idle before it is checked
// for a close from the upstream before reuse.
const staleCheckAfter = 0

// get returns an idle connection to h, or dials a new one.
func (t *Transport) get(ctx context.Context, h *host) (*conn, error) {
	now := mono()
	for {
		h.mu.Lock()
		n := len(h.idle)
		if n == 0 {
			h.mu.Unlock()
			break
		}
		c := h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		h.mu.Unlock()
		idle := now - c.idleSince
		if idle > t.opts.IdleConnTimeout || (idle > staleCheckAfter && !alive(c.nc)) {
			_ = c.nc.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	nc = fastConn(nc)
	c := &conn{t: t, h: h, nc: nc, lr: limitReader{r: nc, left: -1}}
	c.interrupt = func() { _ = nc.SetDeadline(aLongTimeAgo) }
	c.br = bufio.NewReaderSize(&c.lr, readBufSize)
	return c, nil
}

// put returns c to its host's idle pool, or closes it.
func (t *Transport) put(c *conn) {
	h := c.h
	now := mono()
	c.idleSince = now
	h.mu.Lock()
	// Connections at the bottom of the stack are the longest idle: close
	// the expired ones while here.
	var expired []*conn
	for len(h.idle) > 0 && now-h.idle[0].idleSince > t.opts.IdleConnTimeout {
		expired = append(expired, h.idle[0])
		h.idle[0] = nil
		h.idle = h.idle[1:]
	}
	keep := !t.closed.Load() && len(h.idle) < t.opts.MaxIdleConnsPerHost
	if keep {
		h.idle = append(h.idle, c)
	}
	h.mu.Unlock()
	for _, e := range expired {
		_ = e.nc.Close()
	}
	if !keep {
		_ = c.nc.Close()
	}
}

// CloseIdleConnections closes the idle connections of this transport and of
// its fallback.
func (t *Transport) CloseIdleConnections() {
	t.mu.RLock()
	hosts := make([]*host, 0, len(t.hosts))
	for _, h := range t.hosts {
		hosts = append(hosts, h)
	}
	t.mu.RUnlock()
	for _, h := range hosts {
		h.mu.Lock()
		idle := h.idle
		h.idle = nil
		h.mu.Unlock()
		for _, c := range idle {
			_ = c.nc.Close()
		}
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Close closes the idle connections and makes later requests fail;
// connections in use close when their responses end.
func (t *Transport) Close() {
	t.closed.Store(true)
	t.CloseIdleConnections()
}

// IdleConns reports the idle connections kept for host:port addr (tests).
func (t *Transport) IdleConns(addr string) int {
	t.mu.RLock()
	h := t.hosts[addr]
	t.mu.RUnlock()
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

// itoa appends the decimal form of n.
func itoa(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

var _ io.Closer = (*body)(nil)
