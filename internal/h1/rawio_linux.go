package h1

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// rawConn reads and writes a socket with raw system calls: the socket is
// non-blocking, so a read or write never sleeps in the kernel and need not
// leave the scheduler (syscall.Read and Write do, and the first such call
// after the process was idle also wakes the runtime's monitor thread: a
// futex wake and two context switches per request on a quiet gateway).
// Waiting is still the runtime poller's (syscall.RawConn), so deadlines,
// Close and the scheduler behave as they do for a net.Conn.
//
// The callbacks are built once, so a call allocates nothing; their state
// is the connection's, guarded by one lock per direction.
type rawConn struct {
	net.Conn
	rc     syscall.RawConn
	rmu    sync.Mutex
	readFn func(fd uintptr) bool
	rp     []byte
	rn     int
	rerr   syscall.Errno
	peekFn func(fd uintptr) bool
	open   bool // the last peek found the connection open
	peekB  [1]byte

	wmu     sync.Mutex
	writeFn func(fd uintptr) bool
	wp      []byte
	wn      int
	werr    syscall.Errno

	// exchange's state (under rmu): its request's context, the request
	// still to write, the answer's time limit, and the write's outcome
	xFn    func(fd uintptr) bool
	xctx   context.Context
	xw     []byte
	xafter time.Duration
	xwn    int
	xerr   error
}

// fastConn returns nc wrapped in a rawConn when it is a TCP or Unix socket,
// else nc.
func fastConn(nc net.Conn) net.Conn {
	var sc syscall.Conn
	switch c := nc.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &rawConn{Conn: nc, rc: rc}
	c.readFn = c.read
	c.writeFn = c.write
	c.peekFn = c.peek
	c.xFn = c.exchangeStep
	return c
}

// read is the RawConn callback of Read: false (EAGAIN) waits for input.
func (c *rawConn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerr = int(n), e
		return true
	}
}

// peek is the RawConn callback of alive: it never waits for readiness.
func (c *rawConn) peek(fd uintptr) bool {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekB[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.open = e == syscall.EAGAIN
	return true
}

// alive tells whether an idle connection is still open: a peek must find
// nothing to read (the peer sent nothing) and no end of stream. A
// connection that is no socket is taken as open.
func alive(nc net.Conn) bool {
	c, ok := nc.(*rawConn)
	if !ok {
		return true
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.open = false
	return c.rc.Read(c.peekFn) == nil && c.open
}

// exchange writes a request (w) and reads the start of its answer into r,
// as Write and then Read would, with one system call less: the write is
// made inside the read's RawConn.Read, after the poller's readiness was
// reset and before the first wait, so the wait needs no read before it to
// catch an answer that came early (a Read must read until EAGAIN before
// it waits, and right after a request goes out that read finds nothing).
// Whatever the upstream sends after the request (the answer, a close, a
// reset) ends the wait, so nothing is missed. headerTimeout, if not zero,
// bounds the wait from the moment the request is written.
//
// written is false when the request did not all go out; err is then the
// write's (nothingWritten when no byte left, or when the read could not
// begin at all). Otherwise n and err are what Read would return, or err is
// the context's when it ended during the write.
func (c *rawConn) exchange(ctx context.Context, w, r []byte, headerTimeout time.Duration) (n int, written bool, err error) {
	c.rmu.Lock()
	c.xctx, c.xw, c.xafter, c.xwn, c.xerr = ctx, w, headerTimeout, 0, nil
	c.startRead(r)
	rerr := c.rc.Read(c.xFn)
	unsent, wn, xerr := c.xw != nil, c.xwn, c.xerr
	n, errno := c.rn, c.rerr
	c.xctx, c.xw, c.xerr, c.rp = nil, nil, nil, nil
	c.rmu.Unlock()
	switch {
	case unsent: // the read failed before its first call (a deadline, a close)
		return 0, false, nothingWritten{c.ioError("write", rerr, 0)}
	case wn == 0 && xerr != nil:
		return 0, false, nothingWritten{xerr}
	case wn < len(w):
		return 0, false, xerr
	case xerr != nil: // written whole: the context ended meanwhile
		return 0, true, xerr
	}
	n, err = c.readResult(rerr, n, errno)
	return n, true, err
}

// exchangeStep is exchange's RawConn callback: the first call writes the
// request and then waits for the answer without reading first; the later
// ones read.
func (c *rawConn) exchangeStep(fd uintptr) bool {
	w := c.xw
	if w == nil {
		return c.read(fd)
	}
	c.xw = nil
	if c.xwn, c.xerr = c.Write(w); c.xerr != nil { // its own lock: a full socket waits for room
		return true
	}
	c.xerr = startAnswerTimer(c.xctx, c.Conn, c.xafter)
	return c.xerr != nil
}

// write is the RawConn callback of Write: it writes until all is written
// or the socket is full (false: wait until it is writable).
func (c *rawConn) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		p := c.wp[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			if n == 0 { // no progress and no error: never loop on it
				c.werr = syscall.EIO
				return true
			}
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// maxRW bounds one read.
const maxRW = 1 << 30

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.startRead(p)
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rp = nil
	c.rmu.Unlock()
	return c.readResult(err, n, errno)
}

// startRead makes p the buffer of the read callback (c.rmu held).
func (c *rawConn) startRead(p []byte) {
	c.rp, c.rn, c.rerr = p[:min(len(p), maxRW)], 0, 0
}

// readResult is what a read returns once its callback is done: the
// poller's error, the system call's, io.EOF for a closed connection, or n.
// (A failed read's count is -1, never returned.)
func (c *rawConn) readResult(err error, n int, errno syscall.Errno) (int, error) {
	if err := c.ioError("read", err, errno); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wp = nil
	c.wmu.Unlock()
	return n, c.ioError("write", err, errno)
}

// ioError is the error of a read or write: the poller's (a deadline, a
// closed connection), else the system call's, else none.
func (c *rawConn) ioError(op string, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		return c.opError(op, err)
	case errno != 0:
		return c.opError(op, errno)
	}
	return nil
}

// opError wraps err as the net package does for a connection's errors.
func (c *rawConn) opError(op string, err error) error {
	if e, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, e)
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// SyscallConn and CloseWrite are the wrapped socket's.
func (c *rawConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

func (c *rawConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
