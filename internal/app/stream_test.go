package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/reqbody"
)

const streamBody = `{"messages":[{"role":"user","content":"Hi"}],"stream":true}`

// readEvent reads one SSE event (up to and including its blank line).
func readEvent(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" || line == "\r\n" {
			return b.String(), nil
		}
	}
}

// readEvents reads events until the body ends.
func readEvents(t testing.TB, r io.Reader) []string {
	t.Helper()
	br := bufio.NewReader(r)
	var out []string
	for {
		ev, err := readEvent(br)
		if ev != "" {
			out = append(out, ev)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("reading stream: %v", err)
			}
			return out
		}
	}
}

// openStream posts a streaming chat request and returns the open response.
func (g *gateway) openStream(t testing.TB, ctx context.Context) *http.Response {
	t.Helper()
	req := g.request(t, http.MethodPost, chatPath, []byte(streamBody)).WithContext(ctx)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stream request: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestStreamEachChunkReachesClientBeforeUpstreamSendsNext(t *testing.T) {
	t.Parallel()
	var events []string
	for i := range 5 {
		events = append(events, chunk(i, "tok"))
	}
	t.Run("content chunks", func(t *testing.T) {
		t.Parallel()
		eachChunkBeforeNext(t, events, fastRetry)
	})
	// Azure's first event, its prompt-filter verdict with no choices, is
	// read past while a failover is still possible (so that an error event
	// or a stall before the first token fails over); on the last attempt
	// there is none, and it goes at once.
	t.Run("prompt-filter chunk on the last attempt", func(t *testing.T) {
		t.Parallel()
		filter := `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}` + "\n\n"
		eachChunkBeforeNext(t, append([]string{filter}, events...), "retry:\n  count: 0\n")
	})
}

// eachChunkBeforeNext streams events from an upstream that sends event i+1
// only once the client has read event i: a gateway that held any event
// back would stall the stream.
func eachChunkBeforeNext(t *testing.T, events []string, extra string) {
	acks := make(chan int, len(events)) // a late ack must not block the test after the upstream gave up
	rec := newRecorder()
	up := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for i, ev := range events {
			_, _ = io.WriteString(w, ev)
			w.(http.Flusher).Flush()
			select {
			case got := <-acks:
				if got != i {
					t.Errorf("client acknowledged chunk %d, want %d", got, i)
					return
				}
			case <-time.After(5 * time.Second):
				t.Errorf("chunk %d did not reach the client within 5s of being sent", i)
				return
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, doneEvent)
	})
	gw := startGateway(t, []backend{be("a", up.URL)}, extra)
	resp := gw.openStream(t, ctxTimeout(t, 30*time.Second))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "X-Accel-Buffering": "no",
		"X-Llmgate-Backend": "a", "X-Llmgate-Attempts": "1",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	br := bufio.NewReader(resp.Body)
	for i, want := range events {
		ev, err := readEvent(br)
		if err != nil {
			t.Fatalf("chunk %d: %v (got %q)", i, err, ev)
		}
		if ev != want {
			t.Fatalf("chunk %d: got %q, want %q", i, ev, want)
		}
		acks <- i
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != doneEvent {
		t.Errorf("end of stream: got %q, want %q", rest, doneEvent)
	}
}

func TestStreamBrokenMidwayEndsWithErrorEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		partial string // bytes of an unfinished event written before the break
		reset   bool   // a TCP reset right after the last event, not a close
	}{
		{"at an event boundary", "", false},
		{"inside an event", `data: {"id":"chatcmpl-1","choices":[{"delta":{"content":"half`, false},
		// The reset often reaches the gateway in the same wake-up as the
		// event before it: a relay that took a short read for an empty
		// socket would wait for the idle timeout (60 s) instead.
		{"reset right after an event", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			a := rec.upstream(t, "a", func(w http.ResponseWriter, _ *http.Request, _ call) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				for i := range 2 {
					if i == 1 && tc.reset {
						// The last event and the reset leave together,
						// straight on the connection.
						c, _, err := http.NewResponseController(w).Hijack()
						if err != nil {
							panic(err)
						}
						ev := chunk(i, "tok")
						_, _ = fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
						_ = c.(*net.TCPConn).SetLinger(0)
						_ = c.Close()
						return
					}
					_, _ = io.WriteString(w, chunk(i, "tok"))
					w.(http.Flusher).Flush()
				}
				if tc.partial != "" {
					_, _ = io.WriteString(w, tc.partial)
					w.(http.Flusher).Flush()
				}
				panic(http.ErrAbortHandler) // the connection breaks
			})
			b := rec.upstream(t, "b", sse(chunk(0, "b"), doneEvent))
			gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
			resp := gw.openStream(t, ctxTimeout(t, 10*time.Second))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			events := readEvents(t, resp.Body)
			if len(events) != 3 {
				t.Fatalf("events: got %d %q, want 2 chunks and an error event", len(events), events)
			}
			for i := range 2 {
				if events[i] != chunk(i, "tok") {
					t.Errorf("event %d: got %q, want %q", i, events[i], chunk(i, "tok"))
				}
			}
			last := events[2]
			if !strings.HasPrefix(last, "data: ") || !strings.HasSuffix(last, "\n\n") {
				t.Fatalf("last event: got %q, want a data: event", last)
			}
			var e errorBody
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(last, "data: "))), &e); err != nil || e.Error.Message == "" {
				t.Fatalf("last event: got %q, want data: {\"error\":...} (%v)", last, err)
			}
			if e.Error.Code != "upstream_stream_broken" {
				t.Errorf("error code: got %q, want upstream_stream_broken", e.Error.Code)
			}
			if n := rec.Count("b"); n != 0 {
				t.Errorf("backend b called %d times: no failover after the first byte", n)
			}
			// The client's status was the upstream's 200, but the access
			// line says the answer broke after it went out.
			expectLoggedCut(t, gw)
		})
	}
}

// An upstream that ends a committed stream with an error event of its own
// gives the client that one clear error: the gateway adds no second one.
func TestStreamEndedByUpstreamErrorEventGetsNoSecond(t *testing.T) {
	t.Parallel()
	errEvent := `data: {"error":{"code":"server_error","message":"The model had an error."}}` + "\n\n"
	rec := newRecorder()
	a := rec.upstream(t, "a", func(w http.ResponseWriter, _ *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for i := range 2 {
			_, _ = io.WriteString(w, chunk(i, "tok"))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond) // the stream is committed before the error
		}
		_, _ = io.WriteString(w, errEvent)
	})
	gw := startGateway(t, []backend{be("a", a.URL)}, fastRetry)
	resp := gw.openStream(t, ctxTimeout(t, 10*time.Second))
	events := readEvents(t, resp.Body)
	want := []string{chunk(0, "tok"), chunk(1, "tok"), errEvent}
	if strings.Join(events, "") != strings.Join(want, "") {
		t.Errorf("events: got %q, want the upstream's %q and nothing more", events, want)
	}
	gw.Srv.Drain(t)
	lines := gw.Log.accessLines(t)
	if len(lines) != 1 || lines[0]["err"] == nil || lines[0]["attempts"] != float64(1) || lines[0]["level"] != "WARN" {
		t.Errorf("access log: %v, want the request logged with its error, at WARN", lines)
	}
}

func TestStream200ThenErrorEventFailsOver(t *testing.T) {
	t.Parallel()
	for name, first := range map[string]string{
		"data error":  `data: {"error":{"code":"429","message":"Rate limit is exceeded."}}` + "\n\n",
		"event error": "event: error\ndata: {\"message\":\"overloaded\"}\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			a := rec.upstream(t, "a", sse(first, doneEvent))
			want := []string{chunk(0, "b"), chunk(1, "b"), doneEvent}
			b := rec.upstream(t, "b", sse(want...))
			gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
			resp := gw.openStream(t, ctxTimeout(t, 10*time.Second))
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || string(body) != strings.Join(want, "") {
				t.Errorf("response: got %d %q, want 200 and b's stream", resp.StatusCode, body)
			}
			if got := strings.Join(rec.Backends(), ","); got != "a,b" {
				t.Errorf("attempts: got %s, want a,b", got)
			}
			if resp.Header.Get("X-Llmgate-Backend") != "b" || resp.Header.Get("X-Llmgate-Attempts") != "2" {
				t.Errorf("got backend %q attempts %q, want b 2", resp.Header.Get("X-Llmgate-Backend"), resp.Header.Get("X-Llmgate-Attempts"))
			}
		})
	}
}

func TestStreamFailsOverBeforeFirstByte(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429"}}`))
	want := []string{chunk(0, "b"), doneEvent}
	b := rec.upstream(t, "b", sse(want...))
	gw := startGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
	resp := gw.openStream(t, ctxTimeout(t, 10*time.Second))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != strings.Join(want, "") {
		t.Errorf("response: got %d %q, want 200 and b's stream", resp.StatusCode, body)
	}
	// Every attempt carries the same bytes: the client's body, with the
	// usage chunk asked for on its behalf (the gateway strips it again).
	wantBody, _ := reqbody.IncludeUsage([]byte(streamBody))
	for _, c := range rec.Calls() {
		if string(c.Body) != string(wantBody) {
			t.Errorf("%s got body %q, want %q", c.Backend, c.Body, wantBody)
		}
	}
}

func TestStreamClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	gone := make(chan struct{}, 1)
	up := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for i := 0; ; i++ {
			_, _ = io.WriteString(w, chunk(i, "tok"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				gone <- struct{}{}
				return
			case <-time.After(10 * time.Millisecond):
			}
			if i > 1000 {
				return
			}
		}
	})
	gw := startGateway(t, []backend{be("a", up.URL)}, fastRetry)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := gw.openStream(t, ctx)
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		if ev, err := readEvent(br); err != nil || ev != chunk(i, "tok") {
			t.Fatalf("chunk %d: got %q %v", i, ev, err)
		}
	}
	cancel()
	waitFor(t, gone, 5*time.Second, "the upstream stream to be cancelled")
	if n := rec.Count("a"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
}

// A non-streamed answer larger than the read-ahead that breaks after its
// head went out: the client's response is aborted (never a complete-looking
// body), and the access line says the answer was cut.
func TestLargeBodyBrokenAfterCommitIsLoggedAsCut(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", func(w http.ResponseWriter, _ *http.Request, _ call) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(2<<20))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte(" "), 1<<20))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	gw := startGateway(t, []backend{be("a", a.URL)}, fastRetry)
	resp, err := http.DefaultClient.Do(gw.request(t, http.MethodPost, chatPath, []byte(chatBody)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err == nil {
		t.Fatalf("got %d and %d bytes with no error, want the 200 aborted", resp.StatusCode, n)
	}
	expectLoggedCut(t, gw)
}

// A non-streamed body that stalls past timeouts.stream_idle is cut and
// failed over; the log says it stalled, not that something was cancelled.
func TestStalledBodyIsLoggedAsStalled(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	a := rec.upstream(t, "a", func(w http.ResponseWriter, r *http.Request, _ call) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"id":`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	gw := startGateway(t, []backend{be("a", a.URL)}, "retry:\n  count: 1\n  interval: 1ms\ntimeouts:\n  stream_idle: 150ms\n")
	resp, body := gw.chat(t)
	if e := decodeError(t, body); resp.StatusCode != http.StatusBadGateway || e.Error.Code != "upstream_body_broken" {
		t.Fatalf("got %d %s, want 502 upstream_body_broken", resp.StatusCode, body)
	}
	waitLog(t, gw.Log, 1)
	if errText, _ := gw.Log.accessLines(t)[0]["err"].(string); !strings.Contains(errText, "stream_idle") {
		t.Errorf("logged err %q, want it to name timeouts.stream_idle", errText)
	}
}

// expectLoggedCut checks the request's access line says its answer from
// backend a broke after its head went out: a:200+cut, at WARN.
func expectLoggedCut(t *testing.T, gw *gateway) {
	t.Helper()
	waitLog(t, gw.Log, 1)
	line := gw.Log.accessLines(t)[0]
	if line["backends"] != "a:200+cut" || line["level"] != "WARN" {
		t.Errorf("access line: backends %v at %v, want a:200+cut at WARN", line["backends"], line["level"])
	}
}
