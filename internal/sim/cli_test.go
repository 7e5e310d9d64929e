package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/cli"
	"github.com/llmgate/llmgate/internal/logtest"
)

// startRun runs Run in the background and returns the URL it prints and its result channel.
func startRun(t *testing.T, ctx context.Context, args ...string) (string, <-chan error, *logtest.Buffer) {
	t.Helper()
	pr, pw := io.Pipe()
	stderr := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, args, pw, stderr)
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v (stderr %s)", err, stderr)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "llmgate simulate listening on ")
	if !ok {
		t.Fatalf("listening line: got %q", line)
	}
	return url, done, stderr
}

func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func TestRun(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	url, done, stderr := startRun(t, ctx, "-listen", "127.0.0.1:0", "-key", "k", "-tpm", "1000", "-rpm", "10", "-seed", "3")

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+chatPath("dep"), strings.NewReader(chatBody("hi", 5, false)))
	req.Header.Set("api-key", "k")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-remaining-requests") != "9" {
		t.Errorf("got %d, remaining requests %q; want 200 and 9", resp.StatusCode, resp.Header.Get("x-ratelimit-remaining-requests"))
	}
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	if strings.Contains(stderr.String(), "k\"") || !strings.Contains(stderr.String(), "simulator stopped") {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestRunReleasesHungRequestsOnShutdown(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	url, done, _ := startRun(t, ctx, "-listen", "127.0.0.1:0", "-hang", "1")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	got := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), "POST", url+chatPath("dep"), strings.NewReader(chatBody("hi", 0, false)))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	waitFor(t, func() bool { // until the request hangs in the handler
		resp, err := client.Get(url + "/sim/stats")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st Stats
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Faults["hang"] == 1
	})
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	if err := <-got; err == nil {
		t.Error("hung request got an answer, want a connection error")
	}
}

func TestRunFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tpm", "-1"}, "-tpm"},
		{[]string{"-fail-500", "2"}, "fail_500"},
		{[]string{"-fail-500", "0.6", "-fail-503", "0.6"}, "sum"},
		{[]string{"-ttft", "-1s"}, "-ttft"},
		{[]string{"-log-level", "loud"}, "-log-level"},
		{[]string{"extra"}, "unexpected"},
		{[]string{"-nope"}, "not defined"},
		{[]string{"-listen", "256.0.0.1:0"}, "listen"},
	} {
		err := Run(t.Context(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%q): got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-tpm", "many"}} {
		var stderr bytes.Buffer
		err := Run(t.Context(), args, io.Discard, &stderr)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(stderr.String(), "Usage: llmgate simulate") {
			t.Errorf("Run(%q): got %v and stderr %q, want ErrUsage and the usage on stderr", args, err, stderr.String())
		}
	}
	var usage, stderr bytes.Buffer
	if err := Run(t.Context(), []string{"-h"}, &usage, &stderr); !errors.Is(err, flag.ErrHelp) || stderr.Len() > 0 {
		t.Errorf("-h: got %v and stderr %q, want flag.ErrHelp and nothing on stderr", err, stderr.String())
	}
	for _, name := range []string{"-fail-429-retry-after", "-slow-headers-delay", "-stream-cut", "-error-event", "-outage", "/sim/faults"} {
		if !strings.Contains(usage.String(), name) {
			t.Errorf("usage does not mention %s", name)
		}
	}
}

// TestRunTakesSecondsAsSpans: the duration flags take a plain number of seconds as well as a Go
// duration.
func TestRunTakesSecondsAsSpans(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	url, done, stderr := startRun(t, ctx, "-listen", "127.0.0.1:0", "-outage", "30", "-window", "90",
		"-ttft", "0.001", "-token-interval", "0", "-fail-429-retry-after", "2.5", "-slow-headers-delay", ".1")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string, v any) {
		t.Helper()
		resp, err := client.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	var f Faults
	get("/sim/faults", &f)
	if f.RetryAfter429 != 2500*time.Millisecond || f.SlowHeadersDelay != 100*time.Millisecond {
		t.Errorf("faults: got retry_after_429 %v, slow_headers_delay %v; want 2.5s, 100ms", f.RetryAfter429, f.SlowHeadersDelay)
	}
	var o struct{ Remaining string }
	get("/sim/outage", &o)
	if d, err := time.ParseDuration(o.Remaining); err != nil || d <= 25*time.Second || d > 30*time.Second {
		t.Errorf("outage remaining: got %q, want about 30s", o.Remaining)
	}
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run: got %v, want nil (stderr %s)", err, stderr)
	}
	for _, args := range [][]string{{"-ttft", "soon"}, {"-window", "1e3"}, {"-outage", "-5"}} {
		if err := Run(t.Context(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("Run(%q): got %v, want an error mentioning %s", args, err, args[0])
		}
	}
}
