package redis

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/logtest"
)

// TestClientMessagesGoToLogger: go-redis's own messages (here, failed
// dials to an unreachable Redis) reach the store's slog logger as JSON at
// debug level, not stderr as plain text, and stop once the store is closed.
func TestClientMessagesGoToLogger(t *testing.T) {
	// Not parallel: go-redis's logger is process-wide; the store opened last gets it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var buf logtest.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(context.Background(), Options{URL: "redis://:hunter2@" + addr, Timeout: 5 * time.Second, Lazy: true, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping to a closed port: got no error")
	}
	var found bool
	for _, l := range buf.Lines(t) {
		d, _ := l["detail"].(string)
		if l["msg"] == "redis client" && l["level"] == "DEBUG" && strings.Contains(d, "dial") {
			found = true
		}
	}
	if !found {
		t.Fatalf("go-redis's dial failure did not reach the store's logger; log: %q", buf.String())
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("log reveals the password: %q", buf.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n := len(buf.String())
	clientLog.Printf(context.Background(), "after close %d", 1)
	if len(buf.String()) != n {
		t.Errorf("a closed store's logger still gets go-redis's messages: %q", buf.String()[n:])
	}
}
