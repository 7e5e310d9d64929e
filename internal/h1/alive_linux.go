package h1

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open: a peek that must
// find nothing to read (the upstream sent nothing) and no end of stream.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	ok = false
	err = rc.Read(func(fd uintptr) bool {
		n, _, e := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n
		ok = e == syscall.EAGAIN || e == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && ok
}
