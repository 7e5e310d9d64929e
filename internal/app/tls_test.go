package app_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const tlsChatPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01"

// serveTLSWith serves a gateway over TLS with extra config and a streaming
// upstream; it returns the gateway and its address.
func serveTLSWith(t *testing.T, extra string) *fileGateway {
	t.Helper()
	certFile, keyFile := selfSigned(t, t.TempDir(), 1)
	up := newRecorder().upstream(t, "a", sse(chunk(0, "tok"), chunk(1, "tok"), doneEvent))
	return serveFile(t, fileHead+extra+"tls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+
		"\nbackends:\n  - name: a\n    url: "+up.URL+"\n")
}

// TestTLSServesHTTP2AndHTTP1: over TLS a client that offers HTTP/2 gets it,
// one that offers only HTTP/1.1 gets that, and both get their stream.
func TestTLSServesHTTP2AndHTTP1(t *testing.T) {
	t.Parallel()
	g := serveTLSWith(t, "")
	for _, tc := range []struct {
		name  string
		tr    *http.Transport
		major int
	}{
		{"h2", &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}, 2}, //nolint:gosec // a self-signed test certificate
		{"http/1.1", &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed test certificate
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.tr.CloseIdleConnections()
			for range 2 { // the second on the same connection
				req, _ := http.NewRequest(http.MethodPost, g.URL+tlsChatPath, strings.NewReader(opsStreamBody))
				req.Header.Set("api-key", clientKey)
				resp, err := (&http.Client{Transport: tc.tr, Timeout: 5 * time.Second}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != tc.major || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "[DONE]") {
					t.Fatalf("got HTTP/%d %d %q, want HTTP/%d 200 and the stream", resp.ProtoMajor, resp.StatusCode, b, tc.major)
				}
			}
		})
	}
}

// TestTLSBoundsAnswerInJSON: over TLS as over plain HTTP, a head that
// arrives too slowly (slowloris) gets 408 and one over the hard size bound
// 431, both in the API's JSON error shape; plain HTTP sent to the TLS port
// gets a JSON 400 too.
func TestTLSBoundsAnswerInJSON(t *testing.T) {
	t.Parallel()
	g := serveTLSWith(t, "timeouts:\n  read_header: 300ms\nmax_header_bytes: 8192\n")
	addr := strings.TrimPrefix(g.URL, "https://")
	dial := func(t *testing.T) *tls.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // a self-signed test certificate
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	expect := func(t *testing.T, c *tls.Conn, status int, code string) {
		t.Helper()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error struct{ Message, Code string }
		}
		if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(b, &e) != nil || e.Error.Message == "" || (code != "" && e.Error.Code != code) {
			t.Errorf("got %d %s %q, want %d with a JSON error %q", resp.StatusCode, resp.Header.Get("Content-Type"), b, status, code)
		}
	}

	t.Run("slowloris", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		start := time.Now()
		_, _ = io.WriteString(c, "POST "+tlsChatPath+" HTTP/1.1\r\nHost: gateway\r\napi-key: "+clientKey+"\r\nX-Pad: ")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					if _, err := io.WriteString(c, "a"); err != nil {
						return
					}
				}
			}
		}()
		expect(t, c, http.StatusRequestTimeout, "")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("answered after %v, want about timeouts.read_header (300ms)", d)
		}
	})
	t.Run("head over the hard bound", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		go func() {
			_, _ = io.WriteString(c, "POST "+tlsChatPath+" HTTP/1.1\r\nHost: gateway\r\napi-key: "+clientKey+"\r\nX-Big: "+
				strings.Repeat("b", 1200<<10)+"\r\nContent-Length: 2\r\n\r\n{}")
		}()
		expect(t, c, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large")
	})
	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "POST "+tlsChatPath+" HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"code":"http_to_https"`) {
			t.Errorf("got %d %q, want 400 with a JSON error http_to_https", resp.StatusCode, b)
		}
	})
	t.Run("a handshake never finished is dropped", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("the server sent something to a client that never said hello")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("closed after %v, want about timeouts.read_header (300ms)", d)
		}
	})
}
