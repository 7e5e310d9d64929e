package h1

import (
	"net"
	"sync"
	"time"
)

// readDeadline is a server connection's read deadline, applied lazily: the
// server and the handler set the deadline they want, and it reaches the
// socket only when a read may wait on it. A read served from the buffer
// cannot time out, and most requests arrive whole with their body, so of
// the five deadlines a keep-alive request sets (idle, head, none, the
// handler's body limit, none) usually one reaches the socket.
//
// A deadline set while a read waits applies at once (a past one interrupts
// it), as net.Conn's does.
type readDeadline struct {
	nc      net.Conn
	mu      sync.Mutex
	want    time.Time
	set     time.Time // what the socket has
	reading int       // reads in progress
}

// Set records t as the read deadline; it reaches the socket before the next
// read that may wait, or now if a read is waiting.
func (d *readDeadline) Set(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = t
	if d.reading > 0 {
		return d.apply()
	}
	return nil
}

// apply gives the socket the wanted deadline; d.mu is held.
func (d *readDeadline) apply() error {
	if d.want.Equal(d.set) {
		return nil
	}
	if err := d.nc.SetReadDeadline(d.want); err != nil {
		return err
	}
	d.set = d.want
	return nil
}

// Read reads from the connection under the wanted deadline. (A failure to
// set it is a closed connection, which the read reports.)
func (d *readDeadline) Read(p []byte) (int, error) {
	d.mu.Lock()
	d.reading++
	_ = d.apply()
	d.mu.Unlock()
	n, err := d.nc.Read(p)
	d.mu.Lock()
	d.reading--
	d.mu.Unlock()
	return n, err
}
