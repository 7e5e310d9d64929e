package stream

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

type recorder struct {
	bytes.Buffer
	flushes []string
}

func (r *recorder) Flush() { r.flushes = append(r.flushes, r.String()) }

// keeper is a Writer that keeps what it gets and ignores flushes (the
// recorder's copy at each flush would make a long fuzzed stream quadratic).
type keeper struct{ bytes.Buffer }

func (*keeper) Flush() {}

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

// TestCopyDropsPartialEventAtEnd: an upstream that ends (EOF or a read
// error) inside an event gives the client its whole events and nothing of
// the unfinished one, and the copy reports the cut; bytes after the last
// event that no parser acts on (blank lines, comments) are dropped without
// counting as a cut.
func TestCopyDropsPartialEventAtEnd(t *testing.T) {
	t.Parallel()
	three := "data: {\"id\":\"a\"}\n\ndata: {\"id\":\"b\"}\n\ndata: {\"id\":\"c\"}\n\n"
	threeCRLF := strings.ReplaceAll(three, "\n", "\r\n")
	errReset := errors.New("connection reset")
	if !errors.Is(ErrPartialEvent, io.ErrUnexpectedEOF) {
		t.Fatal("ErrPartialEvent does not wrap io.ErrUnexpectedEOF, which callers take for a cut")
	}
	big := "data: " + strings.Repeat("x", 25) + "\n" // 32 bytes: fills the buffer
	for _, tc := range []struct {
		name  string
		parts []string
		err   error  // the source's error after its parts; nil for io.EOF
		want  string // what the client gets
		cut   error  // the copy's error; nil for a clean end
	}{
		{"partial event", []string{three, `data: {"id":"d","obj`}, nil, three, ErrPartialEvent},
		{"partial event in one read", []string{three + `data: {"id":"d","obj`}, nil, three, ErrPartialEvent},
		{"partial event, CRLF", []string{threeCRLF + "data: {\"id\":\"d\"}\r\n"}, nil, threeCRLF, ErrPartialEvent},
		{"event without its blank line", []string{three, "data: [DONE]\n"}, nil, three, ErrPartialEvent},
		{"field line only", []string{three, "event: x"}, nil, three, ErrPartialEvent},
		{"partial event, read error", []string{three, `data: {"id":"d","obj`}, errReset, three, errReset},
		{"lone newline", []string{three, "\n"}, nil, three, nil},
		{"lone CRLF", []string{threeCRLF, "\r\n"}, nil, threeCRLF, nil},
		{"whitespace", []string{three, " \t\n\r\n"}, nil, three, nil},
		{"comment", []string{three, ": ping"}, nil, three, nil},
		{"comment lines", []string{three, ": ping\n:\r\n"}, nil, three, nil},
		{"comment then data", []string{three, ": ping\ndata: x"}, nil, three, ErrPartialEvent},
		{"clean end", []string{three}, nil, three, nil},
		{"nothing", nil, nil, "", nil},
		// An event larger than the buffer goes out in pieces: its blank line
		// may straddle two reads, and a cut in it is still a cut.
		{"oversized event, blank line across reads", []string{big, "\n"}, nil, big + "\n", nil},
		{"oversized event, CRLF across reads", []string{big[:len(big)-1] + "\r", "\n\r\n"}, nil, big[:len(big)-1] + "\r\n\r\n", nil},
		{"oversized event cut", []string{big, "xx"}, nil, big[:len(big)-3], ErrPartialEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dst recorder
			var tail Tail
			src := &chunks{parts: slices.Clone(tc.parts), err: tc.err}
			n, err := Copy(&dst, src, FixedBuf(make([]byte, 32)), 0, &tail, nil)
			if dst.String() != tc.want || n != int64(len(tc.want)) {
				t.Errorf("client got %q (%d), want %q", dst.String(), n, tc.want)
			}
			switch {
			case tc.cut == nil && err != nil:
				t.Errorf("err = %v, want nil (a clean end)", err)
			case tc.cut != nil && !errors.Is(err, tc.cut):
				t.Errorf("err = %v, want %v (a cut)", err, tc.cut)
			}
			if strings.HasSuffix(tc.want, "\n\n") && !tail.AtBoundary() {
				t.Errorf("tail %q: want at a boundary", tail.bytes())
			}
		})
	}
}

// TestCopyFullBufferAtStart: bytes already read that fill the buffer without
// ending an event (a first event larger than the buffer) are passed through,
// not read after forever with an empty slice.
func TestCopyFullBufferAtStart(t *testing.T) {
	t.Parallel()
	ev := "data: " + strings.Repeat("x", 40) + "\n\n"
	buf := make([]byte, 32)
	pre := copy(buf, ev)
	src := &chunks{parts: []string{ev[pre:]}}
	var dst recorder
	var tail Tail
	done := make(chan error, 1)
	go func() {
		_, err := Copy(&dst, src, FixedBuf(buf), pre, &tail, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || dst.String() != ev {
			t.Fatalf("got %q (%v), want %q", dst.String(), err, ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the copy spun on a full buffer")
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
	f.Add([]byte("data: x\n\n: ping\r\n \n"), uint8(2))
	f.Add([]byte("data: x\n\n\n"), uint8(8))
	f.Add([]byte("data: "+strings.Repeat("x", 40)+"\n\ndata: y"), uint8(9))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		s := int(step%16) + 1
		var parts []string
		for i := 0; i < len(in); i += s {
			parts = append(parts, string(in[i:min(i+s, len(in))]))
		}
		again := slices.Clone(parts) // chunks consumes its parts
		var dst keeper
		var tail Tail
		const size = 32
		n, err := Copy(&dst, &chunks{parts: parts}, FixedBuf(make([]byte, size)), 0, &tail, nil)
		checkRelayed(t, in, dst.Bytes(), n, err, size)
		// The same through a pooled buffer handed back while the source waits.
		var pooled Buf
		dst.Reset()
		src := &waitingChunks{chunks: chunks{parts: again}, buf: &pooled}
		n, err = Copy(&dst, src, &pooled, 0, &tail, nil)
		pooled.Release()
		if src.held {
			t.Fatalf("the copy held its buffer while the source waited")
		}
		checkRelayed(t, in, dst.Bytes(), n, err, StreamBufSize)
		IsErrorEvent(in)
		_ = ErrorEvent(&tail, string(in), "x")
	})
}

// checkRelayed checks what a copy of in through a buffer of size bytes
// wrote (got, n) and returned (err) against the plain definition of an
// event's end, the end of any "\n\n" or "\r\n\r\n": the client gets in up
// to an event's end, all events (blank lines after the last may go or
// stay), nothing after the last event's end unless an event of at least
// size bytes passed through in pieces; and the copy reports a cut
// (io.ErrUnexpectedEOF) exactly when bytes after the last event's end
// reached the client or hold a line that is neither blank nor a comment.
func checkRelayed(t *testing.T, in, got []byte, n int64, err error, size int) {
	t.Helper()
	var ends []int
	for i := range in {
		if bytes.HasPrefix(in[i:], []byte("\n\n")) {
			ends = append(ends, i+2)
		}
		if bytes.HasPrefix(in[i:], []byte("\r\n\r\n")) {
			ends = append(ends, i+4)
		}
	}
	last, lo := 0, 0 // the last event's end; the first end followed only by line breaks up to it
	if len(ends) > 0 {
		last = slices.Max(ends)
		// The line breaks just before last; an end at or after their start
		// is followed only by line breaks up to last. (Linear: a fuzzed
		// input can hold a great many ends.)
		run := last
		for run > 0 && (in[run-1] == '\r' || in[run-1] == '\n') {
			run--
		}
		lo = last
		for _, e := range ends {
			if e >= run && e < lo {
				lo = e
			}
		}
	}
	if n != int64(len(got)) || !bytes.HasPrefix(in, got) {
		t.Fatalf("wrote %q (%d), not a prefix of %q", got, n, in)
	}
	if len(got) < lo {
		t.Fatalf("wrote %q, want all of %q", got, in[:lo])
	}
	passed := len(got) > last // a piece of an event larger than the buffer went out
	switch {
	case passed && len(in)-lo < size:
		t.Fatalf("wrote %q past the last whole event of %q", got[last:], in)
	case !passed && len(got) > 0 && !slices.Contains(ends, len(got)):
		t.Fatalf("wrote %q, not whole events, of %q", got, in)
	}
	cut := passed
	for _, line := range strings.FieldsFunc(string(in[last:]), func(r rune) bool { return r == '\r' || r == '\n' }) {
		if !strings.HasPrefix(line, ":") && strings.TrimLeft(line, " \t") != "" {
			cut = true
		}
	}
	if cut && !errors.Is(err, io.ErrUnexpectedEOF) || !cut && err != nil {
		t.Fatalf("copy of %q (wrote %q) returned %v, want a cut: %v", in, got, err, cut)
	}
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
