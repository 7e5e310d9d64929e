package h1

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the read deadlines that reach a real connection.
type countingConn struct {
	net.Conn
	sets atomic.Int32
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func deadlinePair(t *testing.T) (*readDeadline, *countingConn, net.Conn) {
	t.Helper()
	a, b := loopbackPair(t)
	cc := &countingConn{Conn: a}
	return &readDeadline{nc: cc}, cc, b
}

// loopbackPair returns both ends of a loopback TCP connection.
func loopbackPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestReadDeadlineReachesTheSocketOnlyForARead(t *testing.T) {
	d, cc, peer := deadlinePair(t)
	d.Set(time.Now().Add(time.Hour))
	d.Set(time.Time{})
	d.Set(time.Now().Add(2 * time.Hour))
	if n := cc.sets.Load(); n != 0 {
		t.Fatalf("%d deadlines reached the socket with no read", n)
	}
	peer.Write([]byte("x"))
	var b [8]byte
	if n, err := d.Read(b[:]); n != 1 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if n := cc.sets.Load(); n != 1 {
		t.Fatalf("%d deadlines reached the socket for one read, want 1", n)
	}
	peer.Write([]byte("y"))
	if _, err := d.Read(b[:]); err != nil { // the same deadline: nothing to set
		t.Fatal(err)
	}
	if n := cc.sets.Load(); n != 1 {
		t.Fatalf("an unchanged deadline was set again (%d sets)", n)
	}
}

// readWithin reads from d, failing the test (and closing the connection to
// end the read) if the read has not returned within limit.
func readWithin(t *testing.T, d *readDeadline, limit time.Duration) (int, error) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		var b [8]byte
		n, err := d.Read(b[:])
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-time.After(limit):
		d.nc.Close()
		<-done
		t.Fatalf("the read did not return within %v", limit)
		return 0, nil
	}
}

func TestReadDeadlineSetBeforeTimesOutTheRead(t *testing.T) {
	d, _, peer := deadlinePair(t)
	d.Set(time.Now().Add(50 * time.Millisecond))
	if _, err := readWithin(t, d, 5*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read error %v, want a deadline exceeded", err)
	}
	// The socket still holds the deadline that passed: clearing it must
	// reach the socket before the next read, which then waits for data.
	d.Set(time.Time{})
	go func() { time.Sleep(100 * time.Millisecond); peer.Write([]byte("z")) }()
	if n, err := readWithin(t, d, 5*time.Second); n != 1 || err != nil {
		t.Fatalf("read %d, %v after the deadline was cleared", n, err)
	}
}

func TestReadDeadlineSetDuringAReadInterruptsIt(t *testing.T) {
	d, _, _ := deadlinePair(t)
	done := make(chan error, 1)
	go func() {
		var b [8]byte
		_, err := d.Read(b[:])
		done <- err
	}()
	for { // until the read waits
		d.mu.Lock()
		r := d.reading
		d.mu.Unlock()
		if r > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	d.Set(aLongTimeAgo)
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read error %v, want a deadline exceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a past deadline did not interrupt the waiting read")
	}
}

// The idle deadline that was on the socket while the connection waited for
// the request must not cut a body that comes slowly after it: the body's
// read takes the deadline the server wants then (none).
func TestServerSlowBodyOutlivesTheIdleDeadline(t *testing.T) {
	t.Parallel()
	addr, _ := srvStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, strconv.Itoa(len(b)))
	}), func(s *Server) { s.ReadHeaderTimeout = 5 * time.Second; s.IdleTimeout = 150 * time.Millisecond })
	c, br := srvDial(t, addr)
	for range 2 { // the second request comes on an idle connection
		srvWrite(t, c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
		time.Sleep(400 * time.Millisecond)
		srvWrite(t, c, "def")
		if resp, body := srvRead(t, br, "POST"); resp.StatusCode != 200 || body != "6" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
