package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A keep-alive client sees the upstream's answers through the relay, and a
// request body goes the other way; closing the client ends the relay.
func TestRelayCopiesBothWays(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
	}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		relay(context.Background(), &net.Dialer{Timeout: time.Second}, c, up.Listener.Addr().String())
	}()
	tr := &http.Transport{MaxConnsPerHost: 1} // one client connection: the relay serves one
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i, body := range []string{"first", "second"} {
		resp, err := client.Post("http://"+ln.Addr().String()+"/v1/x", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if want := "POST /v1/x " + body; string(got) != want {
			t.Fatalf("request %d: got %q, want %q", i, got, want)
		}
	}
	tr.CloseIdleConnections()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("relay still running after its client closed")
	}
}
