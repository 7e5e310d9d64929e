// Package tlsmux terminates TLS on a listener and splits the connections
// by the protocol the client chose (ALPN): HTTP/2 to one listener,
// HTTP/1.1 to another. So each protocol gets the server made for it (the
// gateway's HTTP/1.1 server answers every bound it enforces in the API's
// JSON, where net/http's would answer in plain text).
package tlsmux

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// Protocols are the ALPN names offered, HTTP/2 first.
var Protocols = []string{"h2", "http/1.1"}

// Mux accepts on a listener, completes each TLS handshake in a goroutine
// of its own (a slow client holds up no other) and queues the connection
// on H2 or H1. Safe for concurrent use.
type Mux struct {
	ln       net.Listener
	cfg      *tls.Config
	timeout  time.Duration
	onError  func(remote net.Addr, err error)
	plain    []byte
	h2, h1   *chanListener
	base     context.Context // cancelled by Close: ends the handshakes under way
	stop     context.CancelFunc
	done     chan struct{}
	once     sync.Once
	pending  sync.WaitGroup
	acceptWG sync.WaitGroup
	err      error // why accepting stopped; set before done is closed
}

// Options configures New.
type Options struct {
	// Config is the server's TLS configuration (cloned; it is given
	// Protocols). Required.
	Config *tls.Config
	// HandshakeTimeout bounds a handshake. Zero: 10 s.
	HandshakeTimeout time.Duration
	// OnError, if not nil, is told of each handshake that failed (not of
	// those Close ended).
	OnError func(remote net.Addr, err error)
	// PlainHTTPAnswer, if not empty, is written to a client that sent
	// plain HTTP instead of a TLS hello, before its connection is closed.
	PlainHTTPAnswer []byte
}

// New starts accepting on ln. Close stops it and closes ln.
func New(ln net.Listener, o Options) *Mux {
	cfg := o.Config.Clone()
	cfg.NextProtos = Protocols
	timeout := o.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	m := &Mux{ln: ln, cfg: cfg, timeout: timeout, onError: o.OnError, plain: o.PlainHTTPAnswer, done: make(chan struct{})}
	m.base, m.stop = context.WithCancel(context.Background())
	m.h2 = &chanListener{m: m, conns: make(chan net.Conn)}
	m.h1 = &chanListener{m: m, conns: make(chan net.Conn)}
	m.acceptWG.Go(m.accept)
	return m
}

// H2 is the listener of the connections that chose HTTP/2.
func (m *Mux) H2() net.Listener { return m.h2 }

// H1 is the listener of the connections that chose HTTP/1.1 or nothing.
func (m *Mux) H1() net.Listener { return m.h1 }

// Close stops accepting, closes ln and every connection not yet handed
// to a server. Connections already handed over are their server's.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		err = m.ln.Close()
		m.stop()
		m.acceptWG.Wait()
		m.pending.Wait()
	})
	return err
}

func (m *Mux) accept() {
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-m.base.Done():
				}
			}
			m.err = err
			close(m.done)
			return
		}
		backoff = 0
		m.pending.Go(func() { m.handshake(c) })
	}
}

func (m *Mux) handshake(c net.Conn) {
	tc := tls.Server(c, m.cfg)
	ctx, cancel := context.WithTimeout(m.base, m.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		if m.onError != nil && m.base.Err() == nil {
			m.onError(c.RemoteAddr(), err)
		}
		var rh tls.RecordHeaderError
		if len(m.plain) > 0 && errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader[:]) {
			_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = rh.Conn.Write(m.plain)
		}
		_ = c.Close()
		return
	}
	to := m.h1
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		to = m.h2
	}
	select {
	case to.conns <- tc:
	case <-m.done:
		_ = tc.Close()
	}
}

// chanListener hands out the connections the Mux queued for it.
type chanListener struct {
	m     *Mux
	conns chan net.Conn
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.m.done:
		if l.m.err != nil && !errors.Is(l.m.err, net.ErrClosed) {
			return nil, l.m.err
		}
		return nil, net.ErrClosed
	}
}

// Close closes the Mux (a server closes its listener when it stops).
func (l *chanListener) Close() error { return l.m.Close() }

func (l *chanListener) Addr() net.Addr { return l.m.ln.Addr() }

// looksLikeHTTP reports whether the first bytes of a connection are a
// plain HTTP request's (as net/http's server tells them).
func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}
