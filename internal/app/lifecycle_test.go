package app_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthzAndReadyz(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	for _, path := range []string{"/healthz", "/readyz"} {
		// No client key is needed, and no upstream is asked.
		if status, body := get(t, gw.Srv.URL+path); status != http.StatusOK {
			t.Errorf("%s: got %d %q, want 200", path, status, body)
		}
	}
	if n := len(rec.Calls()); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}

func TestGracefulDrainFinishesInFlightStream(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rec := newRecorder()
	up := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, chunk(0, "tok"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for i := 1; i < 4; i++ {
			_, _ = io.WriteString(w, chunk(i, "tok"))
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, doneEvent)
	})
	a, log := newApp(t, parseConfig(t, []backend{be("a", up.URL)}, fastRetry+"timeouts:\n  shutdown_grace: 10s\n"))
	// A second listener on the same App stands in for a probe that can still
	// reach it while the main listener is closed for draining.
	probe := httptestServer(t, a.Handler())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()

	if status, _ := get(t, base+"/readyz"); status != http.StatusOK {
		t.Fatalf("readyz before shutdown: got %d, want 200", status)
	}
	req, _ := http.NewRequest(http.MethodPost, base+chatPath, strings.NewReader(streamBody))
	req.Header.Set("api-key", clientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stream request: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if ev, err := readEvent(br); err != nil || ev != chunk(0, "tok") {
		t.Fatalf("first chunk: got %q %v", ev, err)
	}

	stop() // SIGTERM
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body := get(t, probe.URL+"/readyz")
		if status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz while draining: got %d %q, want 503", status, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if status, _ := get(t, probe.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("healthz while draining: got %d, want 200", status)
	}
	// New connections are refused while the stream drains.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("the listener still accepts connections while draining")
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned before the in-flight stream ended: %v", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(release)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream during drain: %v", err)
	}
	want := chunk(1, "tok") + chunk(2, "tok") + chunk(3, "tok") + doneEvent
	if string(rest) != want {
		t.Errorf("rest of stream: got %q, want %q", rest, want)
	}
	if err := waitFor(t, served, 5*time.Second, "Serve to return"); err != nil {
		t.Errorf("Serve: got %v, want nil after a clean drain", err)
	}
	if !strings.Contains(log.String(), `"msg":"draining"`) {
		t.Errorf("log lacks the draining event:\n%s", log.String())
	}
}

// timeouts.drain_delay: after SIGTERM the listener still takes new
// connections for that long, and /readyz on them answers 503, so a load
// balancer learns to stop sending before connections are refused.
func TestDrainDelayKeepsAcceptingWhileNotReady(t *testing.T) {
	t.Parallel()
	up := newRecorder().upstream(t, "a", ok())
	a, _ := newApp(t, parseConfig(t, []backend{be("a", up.URL)}, fastRetry+"timeouts:\n  drain_delay: 600ms\n"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	if status, _ := get(t, base+"/readyz"); status != http.StatusOK {
		t.Fatalf("readyz before shutdown: got %d, want 200", status)
	}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second} // a new connection each time
	stop()                                                                                               // SIGTERM
	start := time.Now()
	for {
		resp, err := fresh.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("a new connection during the drain delay: %v", err)
		}
		resp.Body.Close()
		if status := resp.StatusCode; status == http.StatusServiceUnavailable {
			break
		}
		if time.Since(start) > 500*time.Millisecond {
			t.Fatalf("readyz on a new connection during the drain delay: got %d, want 503", resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain delay")
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("Serve returned %v after SIGTERM, before the 600ms drain delay", d)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("the listener still accepts connections after the drain")
	}
}

// When timeouts.shutdown_grace ends with work still running, the client
// learns why rather than seeing a cut connection: a stream gets a last
// error event (code gateway_shutdown) and ends cleanly, a request not yet
// answered gets a 503 it may send again. Both servers: h1 for plain
// HTTP, net/http for TLS.
func TestGraceOverEndsWhatRunsWithAWord(t *testing.T) {
	t.Parallel()
	for _, tlsOn := range []bool{false, true} {
		name := "plain"
		if tlsOn {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			graceOver(t, tlsOn)
		})
	}
}

func graceOver(t *testing.T, tlsOn bool) {
	arrived := make(chan struct{}, 2)
	up := newRecorder().upstream(t, "a", func(w http.ResponseWriter, r *http.Request, c call) {
		if strings.Contains(string(c.Body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, chunk(0, "tok"))
			w.(http.Flusher).Flush()
		}
		arrived <- struct{}{}
		<-r.Context().Done() // never answers on its own
	})
	extra := fastRetry + "timeouts:\n  shutdown_grace: 300ms\n"
	client := http.DefaultClient
	scheme := "http://"
	if tlsOn {
		certFile, keyFile := selfSigned(t, t.TempDir(), 1)
		extra += "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n"
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a self-signed test certificate
		defer tr.CloseIdleConnections()
		client, scheme = &http.Client{Transport: tr}, "https://"
	}
	a, log := newApp(t, parseConfig(t, []backend{be("a", up.URL)}, extra))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := scheme + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()

	post := func(body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+chatPath, strings.NewReader(body))
		req.Header.Set("api-key", clientKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("request: %v", err)
			return nil
		}
		return resp
	}
	stream := post(streamBody)
	if stream == nil {
		t.FailNow()
	}
	defer stream.Body.Close()
	br := bufio.NewReader(stream.Body)
	if ev, err := readEvent(br); err != nil || ev != chunk(0, "tok") {
		t.Fatalf("first chunk: got %q %v", ev, err)
	}
	plain := make(chan *http.Response, 1)
	go func() { plain <- post(chatBody) }()
	waitFor(t, arrived, 5*time.Second, "the stream upstream")
	waitFor(t, arrived, 5*time.Second, "the plain request upstream")

	stop() // SIGTERM; the grace period ends with both still running
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream after the grace period: %v (want its last event and a clean end)", err)
	}
	evs := readEvents(t, strings.NewReader(string(rest)))
	if len(evs) != 1 || !strings.Contains(evs[0], `"code":"gateway_shutdown"`) {
		t.Errorf("stream after the grace period: got events %q, want one error event with code gateway_shutdown", evs)
	}
	resp := waitFor(t, plain, 5*time.Second, "the plain answer")
	if resp == nil {
		t.FailNow()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"gateway_shutdown"`) {
		t.Errorf("plain request after the grace period: got %d %s, want 503 with code gateway_shutdown", resp.StatusCode, body)
	}
	if err := waitFor(t, served, 5*time.Second, "Serve to return"); err != nil {
		t.Errorf("Serve: got %v, want nil (a stop that was asked for; the log says what it cut)", err)
	}
	if !strings.Contains(log.String(), "grace period over") {
		t.Errorf("log lacks the grace-period line:\n%s", log.String())
	}
}
