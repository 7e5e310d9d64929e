//go:build !linux

package h1

import "net"

// fastConn is nc: raw socket calls are made only on Linux.
func fastConn(nc net.Conn) net.Conn { return nc }

// alive cannot look at an idle connection here: it is taken as open, and a
// failed write on it is retried on a new connection.
func alive(net.Conn) bool { return true }
