//go:build !linux

package h1

import "net"

// fastConn is nc: raw socket calls are made only on Linux.
func fastConn(nc net.Conn) net.Conn { return nc }

// alive cannot look at an idle connection here: it is taken as open, and a
// failed write on it is retried on a new connection.
func alive(net.Conn) bool { return true }

// exchangeConn is never possible here (see the Linux version).
func exchangeConn(net.Conn, []byte, []byte) (int, error, int, error, bool) {
	return 0, nil, 0, nil, false
}
