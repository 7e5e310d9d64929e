package h1

import (
	"net"
	"syscall"
	"unsafe"
)

// prober tells whether an idle connection is still open, with a peek that
// must find nothing to read (the upstream sent nothing) and no end of
// stream. Built once per connection, so a check allocates nothing.
type prober struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	ok  bool
	buf [1]byte
}

func newProber(nc net.Conn) *prober {
	p := &prober{}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return p
	}
	if rc, err := sc.SyscallConn(); err == nil {
		p.rc = rc
	}
	p.fn = func(fd uintptr) bool {
		// A raw call: it cannot block (see rawConn).
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		p.ok = e == syscall.EAGAIN || e == syscall.EWOULDBLOCK
		return true // never wait for readiness
	}
	return p
}

func (p *prober) alive() bool {
	if p.rc == nil {
		return true
	}
	p.ok = false
	return p.rc.Read(p.fn) == nil && p.ok
}
