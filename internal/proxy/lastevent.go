package proxy

import (
	"bytes"

	"github.com/llmgate/llmgate/internal/usage"
)

// streamTap sees every byte a stream's upstream sends: it finds the usage
// (usage.Sniffer) and remembers how the last complete event began, so that
// a stream the upstream ended with its own error event is not given a
// second one by the gateway.
type streamTap struct {
	usage.Sniffer
	last lastEvent
}

func (t *streamTap) Write(p []byte) (int, error) {
	_, _ = t.Sniffer.Write(p)
	t.last.write(p)
	return len(p), nil
}

// lastEvent keeps the first bytes of the last complete SSE event of a
// stream written to it piece by piece (events end with a blank line; CR is
// ignored), without buffering the stream.
type lastEvent struct {
	cur, done [24]byte
	ncur      int
	ndone     int
	nl        bool // the last byte that was not CR was LF
}

func (e *lastEvent) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			e.add(p)
			e.nl = e.nl && onlyCR(p)
			return
		}
		e.add(p[:i])
		if e.nl && onlyCR(p[:i]) {
			// A blank line: the event so far is complete.
			if e.ncur > 0 {
				e.done, e.ndone = e.cur, e.ncur
			}
			e.ncur = 0
		} else {
			e.add(p[i : i+1])
		}
		e.nl = true
		p = p[i+1:]
	}
}

// add keeps the start of the current event (CR and leading LFs aside).
func (e *lastEvent) add(p []byte) {
	for _, c := range p {
		if e.ncur == len(e.cur) {
			return
		}
		if c == '\r' || (c == '\n' && e.ncur == 0) {
			continue
		}
		e.cur[e.ncur] = c
		e.ncur++
	}
}

func onlyCR(p []byte) bool {
	for _, c := range p {
		if c != '\r' {
			return false
		}
	}
	return true
}

// isError reports whether the last complete event was an error event
// (`data: {"error":...}` or `event: error`).
func (e *lastEvent) isError() bool {
	b := e.done[:e.ndone]
	for _, p := range [...]string{`data: {"error"`, `data:{"error"`, `event: error`, `event:error`} {
		if bytes.HasPrefix(b, []byte(p)) {
			return true
		}
	}
	return false
}
