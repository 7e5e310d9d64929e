package h1

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection, the first
// wrapped by fastConn.
func tcpPair(t *testing.T) (*rawConn, *net.TCPConn) {
	t.Helper()
	dc, peer := loopbackPair(t)
	rc, ok := fastConn(dc).(*rawConn)
	if !ok {
		t.Fatalf("fastConn(%T) did not wrap it", dc)
	}
	return rc, peer.(*net.TCPConn)
}

// smallBufferPair is tcpPair with a 16 KiB send buffer on rc and a 64 KiB
// receive buffer on peer (which the kernel doubles): a write of more than
// 160 KiB must wait for the peer to read.
func smallBufferPair(t *testing.T) (*rawConn, *net.TCPConn) {
	t.Helper()
	rc, peer := tcpPair(t)
	if err := rc.Conn.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if err := peer.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	return rc, peer
}

func TestFastConnWrapsOnlySockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := fastConn(a); got != a {
		t.Errorf("fastConn(net.Pipe) = %T, want the pipe itself", got)
	}
	rc, _ := tcpPair(t)
	if _, ok := net.Conn(rc).(syscall.Conn); !ok {
		t.Error("rawConn hides SyscallConn (the client-close watch needs it)")
	}
	if _, ok := net.Conn(rc).(interface{ CloseWrite() error }); !ok {
		t.Error("rawConn hides CloseWrite (the lingering close needs it)")
	}
}

// A write larger than both socket buffers waits for the peer to read
// (EAGAIN, then the poller) and arrives whole; reads see it in order.
func TestRawConnLargeWriteAndReadArriveWhole(t *testing.T) {
	rc, peer := smallBufferPair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, far more than the buffers hold
	got := make(chan []byte, 1)
	const readerSleeps = 50 * time.Millisecond
	go func() {
		time.Sleep(readerSleeps) // let the writer fill the buffers first
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want))))
		got <- b
	}()
	start := time.Now()
	n, err := rc.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	// It cannot have finished before the reader woke: it waited (EAGAIN,
	// then the poller) and went on from where the kernel stopped taking.
	if d := time.Since(start); d < readerSleeps-5*time.Millisecond {
		t.Fatalf("a 1 MiB write into 80 KiB of buffers returned after %v, before anything read it", d)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}
	// And back the other way, through Read, in small pieces.
	go func() { _, _ = peer.Write(want) }()
	back := make([]byte, 0, len(want))
	buf := make([]byte, 1000)
	for len(back) < len(want) {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", len(back), err)
		}
		back = append(back, buf[:n]...)
	}
	if !bytes.Equal(back, want) {
		t.Fatal("Read returned bytes out of order")
	}
}

func TestRawConnEndsAsANetConnDoes(t *testing.T) {
	t.Run("peer closes: EOF", func(t *testing.T) {
		rc, peer := tcpPair(t)
		_, _ = peer.Write([]byte("last"))
		_ = peer.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != "last" {
			t.Fatalf("ReadAll = %q, %v; want \"last\", nil", b, err)
		}
		if n, err := rc.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("Read after EOF = %d, %v", n, err)
		}
	})
	t.Run("CloseWrite: the peer sees EOF", func(t *testing.T) {
		rc, peer := tcpPair(t)
		if err := rc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("peer Read = %v, want EOF", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		rc, _ := tcpPair(t)
		_ = rc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := rc.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past its deadline = %v, want a timeout", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("error %v is not a read *net.OpError", err)
		}
	})
	t.Run("closed while blocked", func(t *testing.T) {
		rc, _ := tcpPair(t)
		done := make(chan error, 1)
		go func() {
			_, err := rc.Read(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		_ = rc.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read interrupted by Close = %v, want net.ErrClosed", err)
		}
		if _, err := rc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
		}
	})
	t.Run("reset: the errno comes through", func(t *testing.T) {
		rc, peer := tcpPair(t)
		_ = peer.SetLinger(0)
		_, _ = rc.Write([]byte("unread"))
		time.Sleep(10 * time.Millisecond)
		_ = peer.Close() // unread data and linger 0: an RST
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = rc.Read(make([]byte, 8))
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Read after a reset = %v, want ECONNRESET", err)
		}
		var se *os.SyscallError
		if !errors.As(err, &se) || se.Syscall != "read" {
			t.Fatalf("error %v does not carry the read's *os.SyscallError", err)
		}
	})
}

// alive peeks at an idle connection: open while the peer sent nothing,
// not once it sent a byte (an answer nobody asked for) or closed.
func TestAliveSeesWhatTheIdlePeerDid(t *testing.T) {
	rc, peer := tcpPair(t)
	if !alive(rc) {
		t.Fatal("a quiet open connection is not alive")
	}
	_, _ = peer.Write([]byte("x"))
	time.Sleep(10 * time.Millisecond)
	if alive(rc) {
		t.Error("a connection with unsolicited bytes is alive")
	}
	rc2, peer2 := tcpPair(t)
	_ = peer2.Close()
	time.Sleep(10 * time.Millisecond)
	if alive(rc2) {
		t.Error("a connection its peer closed is alive")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if !alive(a) {
		t.Error("a connection that is no socket is not taken as open")
	}
}

// One Read and one Write run at once (a request's body read while its
// answer is written); -race checks the state each keeps.
func TestRawConnConcurrentReadAndWrite(t *testing.T) {
	rc, peer := tcpPair(t)
	const n = 2000
	go func() { _, _ = io.Copy(peer, peer) }() // echo
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, err := rc.Write([]byte("ping\n")); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := 0
	buf := make([]byte, 64)
	for got < 5*n {
		m, err := rc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += m
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Reads and writes allocate nothing: their callbacks are built once.
func TestRawConnAllocatesNothing(t *testing.T) {
	rc, peer := tcpPair(t)
	go func() { _, _ = io.Copy(peer, peer) }()
	out, in := []byte("0123456789"), make([]byte, 10)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rc.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a write and a read allocated %.1f times, want 0", allocs)
	}
}

// TestExchangeWaitsForRoomAndTimesTheAnswerFromTheWrite: a request larger
// than both socket buffers goes out inside the exchange's read, waiting for
// room while the peer reads nothing; the answer's time limit runs from the
// end of the write, not its start (ResponseHeaderTimeout's promise), and
// the answer is read whole.
func TestExchangeWaitsForRoomAndTimesTheAnswerFromTheWrite(t *testing.T) {
	rc, peer := smallBufferPair(t)
	req := bytes.Repeat([]byte("r"), 250<<10) // more than the two buffers hold (160 KiB, as the kernel doubles them)
	const peerSleeps, limit = 300 * time.Millisecond, 200 * time.Millisecond
	go func() {
		time.Sleep(peerSleeps) // longer than the limit: the write waits all along
		if _, err := io.ReadFull(peer, make([]byte, len(req))); err == nil {
			_, _ = peer.Write([]byte("answer"))
		}
	}()
	start := time.Now()
	r := make([]byte, 64)
	n, written, err := rc.exchange(context.Background(), req, r, limit)
	if !written || err != nil || string(r[:n]) != "answer" {
		t.Fatalf("exchange: %q, written %v, %v", r[:n], written, err)
	}
	if d := time.Since(start); d < peerSleeps-5*time.Millisecond {
		t.Fatalf("a 250 KiB request into 160 KiB of buffers went out in %v, before the peer read", d)
	}

	// Nothing written: the answer's time limit runs out, as a Read's would.
	go func() { _, _ = io.ReadFull(peer, make([]byte, 4)) }()
	n, written, err = rc.exchange(context.Background(), []byte("ping"), r, 50*time.Millisecond)
	if !written || n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("exchange without an answer: %d, written %v, %v; want a deadline error", n, written, err)
	}

	// A context that ended while the request went out (here: before; the
	// exchange itself installs no interrupt): the request is written, and
	// setting the answer's time limit does not hide the cancellation.
	_ = rc.SetReadDeadline(time.Time{}) // the last exchange's limit passed
	go func() { _, _ = io.ReadFull(peer, make([]byte, 6)) }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, written, err = rc.exchange(ctx, []byte("pong\r\n"), r, 2*time.Second); !written || n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("exchange under an ended context: %d, written %v, %v; want written and context.Canceled", n, written, err)
	}

	// An interrupted connection (a deadline in the past, as a cancellation
	// sets): the read cannot begin, nothing goes out, and the error says so.
	_ = rc.SetDeadline(time.Unix(1, 0))
	if _, written, err = rc.exchange(ctx, []byte("late"), r, 0); written || !errors.As(err, new(nothingWritten)) {
		t.Fatalf("exchange on an interrupted connection: written %v, %v; want nothingWritten", written, err)
	}
}

// TestExchangeAllocatesNothing: an exchange (request out, answer in)
// allocates nothing, as a Write and a Read do not.
func TestExchangeAllocatesNothing(t *testing.T) {
	rc, peer := tcpPair(t)
	go func() { _, _ = io.Copy(peer, peer) }()
	out, in := []byte("0123456789"), make([]byte, 10)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		got := 0
		n, written, err := rc.exchange(ctx, out, in, time.Second)
		for got += n; err == nil && written && got < len(out); got += n {
			n, err = rc.Read(in[got:])
		}
		if err != nil || !written {
			t.Fatal(written, err)
		}
	})
	if allocs != 0 {
		t.Errorf("an exchange allocated %.1f times, want 0", allocs)
	}
}
