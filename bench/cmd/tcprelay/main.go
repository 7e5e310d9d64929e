// Command tcprelay is the benchmark's floor for a Go proxy: for each client
// connection it dials the upstream and copies bytes both ways with the
// standard library (io.Copy, two goroutines), and does nothing else. It
// never parses HTTP, so it cannot authenticate, route, retry, count tokens
// or even tell one request from the next; it is not a gateway. What it
// costs is what the Go runtime and the kernel cost to move the same bytes
// through a process, which no Go proxy can undercut by much.
//
//	tcprelay -listen 127.0.0.1:18409 -upstream 127.0.0.1:18401
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		log.SetFlags(0)
		log.Fatalf("tcprelay: %v", err)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:18409", "`address` to serve on")
	upstream := flag.String("upstream", "127.0.0.1:18401", "upstream `host:port`")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	go func() {
		<-ctx.Done()
		_ = ln.Close()
		mu.Lock()
		for c := range open {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	fmt.Printf("tcprelay listening on %s -> %s\n", ln.Addr(), *upstream)
	d := net.Dialer{Timeout: 5 * time.Second}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			return err
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			relay(ctx, &d, c, *upstream)
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
}

// relay copies c to a new upstream connection and back until either side
// ends, then closes both.
func relay(ctx context.Context, d *net.Dialer, c net.Conn, addr string) {
	defer c.Close()
	u, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(u, c)
	}()
	copyHalf(c, u)
	<-done
}

// copyHalf copies src to dst, then closes dst's write side (or all of dst)
// so the other direction ends too. It reads into a buffer and writes from
// it, as a proxy that looks at the bytes must (io.Copy between two TCP
// connections would splice them in the kernel instead).
func copyHalf(dst, src net.Conn) {
	buf := make([]byte, 4096)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		_ = cw.CloseWrite()
		return
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = dst.Close()
		_ = src.Close()
	}
}
