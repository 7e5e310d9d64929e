package stream

import (
	"bytes"
	"io"
	"net/http/httptest"
	"testing"
)

// sink discards writes; a minimal Writer so the budget counts the relay only.
type sink struct{}

func (sink) Write(p []byte) (int, error) { return len(p), nil }
func (sink) Flush()                      {}

// TestRelayAllocBudget: relaying a stream allocates nothing per chunk, with
// the usage tap, the drop filter and the trim filter on.
func TestRelayAllocBudget(t *testing.T) {
	ev := []byte(`data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}` + "\n\n")
	stream := bytes.Repeat(ev, 100)
	buf := FixedBuf(make([]byte, StreamBufSize))
	src := bytes.NewReader(nil)
	filter := Filter{Tap: io.Discard, Drop: func([]byte) bool { return false }, Trim: func(b []byte) []byte { return b }}
	allocs := testing.AllocsPerRun(50, func() {
		src.Reset(stream)
		var tail Tail
		if _, err := CopyFiltered(sink{}, src, buf, 0, &tail, filter); err != nil {
			t.Fatal(err)
		}
	})
	// 100 chunks per run: the budget is what one relay call may cost, not per chunk.
	if allocs > 2 {
		t.Errorf("relaying 100 chunks allocated %.0f times, budget 2", allocs)
	}
	_ = httptest.NewRecorder
}
