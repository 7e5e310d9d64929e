package app_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// heldStreamStackBudget bounds the goroutine stack that one open stream
// keeps through the gateway (h1.Server's connection goroutine, which runs
// the handler; a client's leaving is watched without a goroutine), once the
// garbage collector has shrunk what it can. Measured 2026-11-27: 7.6 KiB
// (8 KiB stacks, some halved); 10 KiB under net/http's server (its
// background reader included), 18.5 KiB before the handler's frames at the
// wait were cut under a quarter of a 16 KiB stack.
const heldStreamStackBudget = 10 << 10

// TestHeldStreamStackBudget holds streams open through a real listener and
// measures the stack they keep. The upstream and the client are raw
// connections served without goroutines of their own, so the stack measured
// is the gateway's alone.
func TestHeldStreamStackBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes stack frames; measured without -race")
	}
	const n = 64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The upstream: one goroutine answers each connection's request with
	// the head of a stream and its first event, then leaves it open.
	var held []net.Conn
	served := make(chan error, 1)
	go func() {
		head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
		ev := chunk(0, "tok")
		first := head + strconv.FormatInt(int64(len(ev)), 16) + "\r\n" + ev + "\r\n"
		buf := make([]byte, 64<<10)
		for range n {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			held = append(held, c)
			if err := readHead(c, buf); err != nil {
				served <- err
				return
			}
			if _, err := c.Write([]byte(first)); err != nil {
				served <- err
				return
			}
		}
		served <- nil
	}()
	gw := startGateway(t, []backend{be("a", "http://"+ln.Addr().String())}, fastRetry)
	addr := gw.Srv.Listener.Addr().String()

	// One stream first, so that everything made once is made before the
	// baseline.
	clients := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	open := func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		req := "POST " + chatPath + " HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\napi-key: " + clientKey +
			"\r\nContent-Length: " + strconv.Itoa(len(streamBody)) + "\r\n\r\n" + streamBody
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream status %d", resp.StatusCode)
		}
		line, err := br.ReadString('\n') // the first chunk's size: the first event is through
		if err != nil || line == "" {
			t.Fatalf("first event: %q %v", line, err)
		}
	}
	open()
	stacks := func() uint64 {
		runtime.GC() // one halving of a stack per cycle
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse
	}
	before := stacks()
	for range n - 1 {
		open()
	}
	after := stacks()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	per := (int64(after) - int64(before)) / (n - 1)
	t.Logf("held stream: %d bytes of stack (budget %d)", per, heldStreamStackBudget)
	if per > heldStreamStackBudget {
		t.Errorf("a held stream keeps %d bytes of stack, budget %d: a frame on the relay's path grew, or "+
			"something deep now runs under it (see proxy.attempt and proxy.openStream)", per, heldStreamStackBudget)
	}
	for _, c := range held {
		_ = c.Close()
	}
}

// readHead reads from c until the end of a request head (the gateway's
// request is one write, head and small body together).
func readHead(c net.Conn, buf []byte) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n := 0
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
		m, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
	}
	return nil
}
