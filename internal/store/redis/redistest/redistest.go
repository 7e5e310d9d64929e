// Package redistest runs a throwaway redis-server for tests: on a free
// loopback port, without persistence, stopped by t.Cleanup.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/logtest"
)

const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
)

// Server is one redis-server process. Its methods must be called from the
// test goroutine (they may call t.Fatal).
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex     // guards cmd and done
	cmd  *exec.Cmd      // nil while stopped
	done chan struct{}  // closed when cmd has exited
	log  logtest.Buffer // the server's output, shown when it fails
}

// Start runs redis-server on a free port and stops it when the test ends.
// It skips the test when redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed: apt-get install redis-server")
	}
	dir := t.TempDir()
	for range 3 { // another process may take the port between probe and start
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		s := &Server{t: t, bin: bin, dir: dir, port: port}
		if err = s.start(); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		t.Logf("redistest: port %d: %v", port, err)
	}
	t.Fatalf("redistest: redis-server did not start")
	return nil
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop terminates the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops the server and starts a new one on the same port, with an
// empty dataset and script cache, and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { // owned by s: ends when the process exits, which Stop waits for
		_ = cmd.Wait()
		close(done)
	}()
	if err := s.waitReady(done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w; output:\n%s", err, s.log.String())
	}
	s.cmd, s.done = cmd, done
	return nil
}

// waitReady polls PING until PONG, the process exits or readyTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(s.Addr())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not ready after %v: %w", readyTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		case <-tick.C:
		}
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	a, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("listener address %v is not TCP", l.Addr())
	}
	return a.Port, nil
}
