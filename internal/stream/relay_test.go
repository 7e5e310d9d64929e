package stream

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

type recorder struct {
	bytes.Buffer
	flushes []string
}

func (r *recorder) Flush() { r.flushes = append(r.flushes, r.String()) }

// chunks yields one piece per Read, then err.
type chunks struct {
	parts []string
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestCopyWholeEventsOnly(t *testing.T) {
	t.Parallel()
	src := &chunks{parts: []string{"data: {\"a\":1}\n\nda", "ta: {\"b\":2}\n", "\ndata: [DONE]\n\n"}}
	var dst recorder
	var tail Tail
	buf := make([]byte, 64)
	n, err := Copy(&dst, src, FixedBuf(buf), 0, &tail, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
	if dst.String() != want || n != int64(len(want)) {
		t.Fatalf("got %q (%d)", dst.String(), n)
	}
	for _, f := range dst.flushes {
		if f != "" && !strings.HasSuffix(f, "\n\n") {
			t.Errorf("flushed a partial event: %q", f)
		}
	}
	if !tail.Done() || !tail.AtBoundary() {
		t.Error("tail: want done at boundary")
	}
}

func TestCopyDropsPartialEventOnError(t *testing.T) {
	t.Parallel()
	src := &chunks{parts: []string{"data: {\"a\":1}\n\ndata: {\"b\""}, err: io.ErrUnexpectedEOF}
	var dst recorder
	var tail Tail
	_, err := Copy(&dst, src, FixedBuf(make([]byte, 64)), 0, &tail, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if dst.String() != "data: {\"a\":1}\n\n" {
		t.Fatalf("got %q", dst.String())
	}
	if tail.Done() {
		t.Error("tail says done")
	}
	ev := string(ErrorEvent(&tail, `broke "here"`, "upstream_stream_broken"))
	if ev != "data: {\"error\":{\"message\":\"broke \\\"here\\\"\",\"type\":\"server_error\",\"param\":null,\"code\":\"upstream_stream_broken\"}}\n\n" {
		t.Errorf("error event = %q", ev)
	}
}

func TestCopyOversizedEventPassesThrough(t *testing.T) {
	t.Parallel()
	big := "data: " + strings.Repeat("x", 200) + "\n\n"
	src := &chunks{parts: []string{big}}
	var dst recorder
	var tail Tail
	if _, err := Copy(&dst, src, FixedBuf(make([]byte, 64)), 0, &tail, nil); err != nil {
		t.Fatal(err)
	}
	if dst.String() != big {
		t.Fatalf("got %d bytes, want %d", dst.Len(), len(big))
	}
}

func TestFirstEventAndErrorDetection(t *testing.T) {
	t.Parallel()
	buf := make([]byte, 128)
	n, err := FirstEvent(&chunks{parts: []string{"data: {\"err", "or\":{\"code\":\"500\"}}\n\ndata: x\n\n"}}, buf)
	if err != nil || !IsErrorEvent(buf[:n]) {
		t.Fatalf("n=%d err=%v event=%q: want an error event", n, err, buf[:n])
	}
	for _, tc := range []struct {
		ev   string
		want bool
	}{
		{"data: {\"id\":\"\",\"choices\":[],\"prompt_filter_results\":[]}\n\n", false},
		{"event: error\ndata: {}\n\n", true},
		{"data: { \"error\": {}}\r\n\r\n", true},
		{"data: [DONE]\n\n", false},
		{": comment\n\n", false},
	} {
		if got := IsErrorEvent([]byte(tc.ev)); got != tc.want {
			t.Errorf("IsErrorEvent(%q) = %v, want %v", tc.ev, got, tc.want)
		}
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	var tail Tail
	for _, p := range []string{"da", "ta: [DO", "NE]", "\n", "\n"} {
		tail.Add([]byte(p))
	}
	if !tail.Done() || !tail.AtBoundary() {
		t.Errorf("tail %q: want done at boundary", tail.bytes())
	}
}

// waitingChunks is chunks as a Waiter; it records a Wait made while the
// copy held its buffer.
type waitingChunks struct {
	chunks
	buf   *Buf
	waits int
	held  bool
}

func (w *waitingChunks) Wait() error {
	w.waits++
	if w.buf.p != nil {
		w.held = true
	}
	return nil
}

// TestCopyHandsBufferBackWhileWaiting: between whole events the relay holds
// no buffer while its source waits, and an event split across reads is
// still written whole.
func TestCopyHandsBufferBackWhileWaiting(t *testing.T) {
	t.Parallel()
	parts := []string{"data: {\"a\":1}\n\n", "data: {\"b\"", ":2}\n\n", "data: [DONE]\n\n"}
	want := strings.Join(parts, "")
	var buf Buf
	defer buf.Release()
	src := &waitingChunks{chunks: chunks{parts: parts}, buf: &buf}
	var dst recorder
	var tail Tail
	n, err := Copy(&dst, src, &buf, 0, &tail, nil)
	if err != nil || dst.String() != want || n != int64(len(want)) {
		t.Fatalf("got %q (%d, %v), want %q", dst.String(), n, err, want)
	}
	if src.held {
		t.Error("the copy held its buffer while the source waited")
	}
	// Waits before reads 1, 2, 4 and the final EOF; read 3 completes a pending event.
	if src.waits != 4 {
		t.Errorf("waited %d times, want 4 (not while an event was pending)", src.waits)
	}
	if !tail.Done() {
		t.Error("tail: want [DONE]")
	}
}

func FuzzCopy(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), uint8(3))
	f.Add([]byte("event: error\r\ndata: {}\r\n\r\n"), uint8(1))
	f.Add([]byte("data: x\n\nda"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		s := int(step%16) + 1
		var parts []string
		for i := 0; i < len(in); i += s {
			parts = append(parts, string(in[i:min(i+s, len(in))]))
		}
		again := slices.Clone(parts) // chunks consumes its parts
		var dst recorder
		var tail Tail
		n, err := Copy(&dst, &chunks{parts: parts}, FixedBuf(make([]byte, 32)), 0, &tail, nil)
		if err != nil || !bytes.Equal(dst.Bytes(), in) || n != int64(len(in)) {
			t.Fatalf("Copy changed the stream: err=%v got %q want %q", err, dst.Bytes(), in)
		}
		// The same through a pooled buffer handed back while the source waits.
		var pooled Buf
		dst.Reset()
		src := &waitingChunks{chunks: chunks{parts: again}, buf: &pooled}
		n, err = Copy(&dst, src, &pooled, 0, &tail, nil)
		pooled.Release()
		if err != nil || !bytes.Equal(dst.Bytes(), in) || n != int64(len(in)) || src.held {
			t.Fatalf("Copy over a Waiter changed the stream: err=%v held=%v got %q want %q", err, src.held, dst.Bytes(), in)
		}
		IsErrorEvent(in)
		_ = ErrorEvent(&tail, string(in), "x")
	})
}

func BenchmarkCopy(b *testing.B) {
	ev := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}]}` + "\n\n")
	w := httptest.NewRecorder()
	buf := make([]byte, BufSize)
	src := bytes.NewReader(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		src.Reset(ev)
		w.Body.Reset()
		var tail Tail
		if _, err := Copy(w, src, FixedBuf(buf), 0, &tail, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzBoundary checks the boundary search against the plain definition: the
// end of the last "\n\n" or "\r\n\r\n" that starts at or after from.
func FuzzBoundary(f *testing.F) {
	f.Add([]byte("data: a\n\ndata: b\r\n\r\n"), uint8(0))
	f.Add([]byte("data: a\n\ndata: b"), uint8(5))
	f.Add([]byte("\r\n\r\n\n\n"), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, from uint8) {
		fr := min(int(from), len(b))
		want := -1
		for i := fr; i < len(b); i++ {
			if bytes.HasPrefix(b[i:], []byte("\n\n")) {
				want = max(want, i+2)
			}
			if bytes.HasPrefix(b[i:], []byte("\r\n\r\n")) {
				want = max(want, i+4)
			}
		}
		if got := lastBoundaryFrom(b, fr); got != want {
			t.Fatalf("lastBoundaryFrom(%q, %d) = %d, want %d", b, fr, got, want)
		}
		if fr == 0 && lastBoundary(b) != want {
			t.Fatalf("lastBoundary(%q) = %d, want %d", b, lastBoundary(b), want)
		}
	})
}
