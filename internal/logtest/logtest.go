// Package logtest is a log sink for tests: a buffer safe for concurrent
// writers (loggers, servers, subprocess pipes) and the JSON lines written to
// it, decoded.
package logtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer safe for concurrent use. The zero value is an
// empty buffer ready for use.
type Buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines decodes every line written as a JSON object; a line that is not
// JSON fails t.
func (l *Buffer) Lines(t testing.TB) []map[string]any {
	t.Helper()
	return Decode(t, l.String())
}

// Decode decodes every line of s (up to 1 MiB each) as a JSON object; a
// line that is not JSON fails t and is left out.
func Decode(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %q: %v", sc.Text(), err)
			continue
		}
		out = append(out, m)
	}
	return out
}
