package tlsmux_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/tlsmux"
)

func serverConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tlsmux test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func start(t *testing.T, timeout time.Duration) (*tlsmux.Mux, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := tlsmux.New(ln, tlsmux.Options{Config: serverConfig(t), HandshakeTimeout: timeout})
	t.Cleanup(func() { _ = m.Close() })
	return m, ln.Addr().String()
}

// accept returns the next connection of ln, or fails after 5 s.
func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	select {
	case c := <-got:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection within 5 s")
		return nil
	}
}

// TestSplitsByProtocol: h2 goes to H2; http/1.1 and no ALPN go to H1, each
// with its handshake done; a client that never says hello holds up none.
func TestSplitsByProtocol(t *testing.T) {
	t.Parallel()
	m, addr := start(t, 0)
	idle, err := net.Dial("tcp", addr) // connected, silent
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for _, tc := range []struct {
		offer []string
		want  net.Listener
		proto string
	}{
		{[]string{"h2", "http/1.1"}, m.H2(), "h2"},
		{[]string{"http/1.1"}, m.H1(), "http/1.1"},
		{nil, m.H1(), ""},
	} {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: tc.offer}) //nolint:gosec // a self-signed test certificate
		if err != nil {
			t.Fatal(err)
		}
		s := accept(t, tc.want)
		tc2, ok := s.(*tls.Conn)
		if !ok || !tc2.ConnectionState().HandshakeComplete || tc2.ConnectionState().NegotiatedProtocol != tc.proto {
			t.Errorf("offer %v: got %T %+v, want a TLS connection, handshake done, protocol %q", tc.offer, s, tc2.ConnectionState(), tc.proto)
		}
		// The two ends talk through it.
		go func() { _, _ = c.Write([]byte("ping")) }()
		buf := make([]byte, 4)
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(buf); err != nil || string(buf) != "ping" {
			t.Errorf("offer %v: read %q, %v", tc.offer, buf, err)
		}
		c.Close()
		s.Close()
	}
}

// TestHandshakeTimeoutAndClose: a client that never finishes its handshake
// is dropped after the timeout; Close ends the listeners at once, even
// with a handshake under way.
func TestHandshakeTimeoutAndClose(t *testing.T) {
	t.Parallel()
	m, addr := start(t, 200*time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("silent client: read %v after %v, want the connection closed after about 200ms", err, time.Since(start))
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	errs := make(chan error, 2)
	for _, ln := range []net.Listener{m.H1(), m.H2()} {
		go func() {
			_, err := ln.Accept()
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	start = time.Now()
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a handshake under way", d)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: got %v, want net.ErrClosed", err)
		}
	}
}

// TestHandshakeErrorsReported: a client that speaks plain HTTP to the TLS
// port is told of by OnError, with its address, and gets PlainHTTPAnswer.
func TestHandshakeErrorsReported(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	m := tlsmux.New(ln, tlsmux.Options{Config: serverConfig(t), HandshakeTimeout: time.Second,
		OnError: func(remote net.Addr, err error) { got <- remote.String() }, PlainHTTPAnswer: []byte("HTTP/1.1 400 Bad Request\r\n\r\n")})
	t.Cleanup(func() { _ = m.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	select {
	case remote := <-got:
		if remote != c.LocalAddr().String() {
			t.Errorf("onError for %s, want the client %s", remote, c.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake error reported")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); string(b) != "HTTP/1.1 400 Bad Request\r\n\r\n" {
		t.Errorf("plain HTTP client got %q, want PlainHTTPAnswer", b)
	}
}
