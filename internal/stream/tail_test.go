package stream

import "testing"

// The start of the last whole event written is remembered, whatever the
// pieces it was written in, so a stream ended by an error event is told.
func TestTailEndedWithError(t *testing.T) {
	t.Parallel()
	chunk := `data: {"id":"c","choices":[{"delta":{"content":"a"}}]}` + "\n\n"
	errEv := `data: {"error":{"message":"boom","code":"500"}}` + "\n\n"
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"chunks", chunk + chunk, false},
		{"chunks then an error", chunk + chunk + errEv, true},
		{"an error then a chunk", errEv + chunk, false},
		{"CRLF", "data: {\"error\":{}}\r\n\r\n", true},
		{"event: error", "event: error\ndata: {}\n\n", true},
		{"an incomplete error is not the last event", chunk + `data: {"error"`, false},
		{"trailing blank lines", chunk + errEv + "\n\n", true},
		{"nothing", "", false},
	} {
		for _, size := range []int{1, 2, 3, 7, 1 << 20} {
			var tail Tail
			for s := tc.in; s != ""; {
				n := min(size, len(s))
				tail.Add([]byte(s[:n]))
				s = s[n:]
			}
			if got := tail.EndedWithError(); got != tc.want {
				t.Errorf("%s (pieces of %d): EndedWithError = %v, want %v", tc.name, size, got, tc.want)
			}
		}
	}
}
