//go:build !linux

package h1

import "net"

// fastConn is nc: raw socket calls are made only on Linux.
func fastConn(nc net.Conn) net.Conn { return nc }
