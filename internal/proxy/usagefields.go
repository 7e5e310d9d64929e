package proxy

import (
	"bytes"

	"github.com/llmgate/llmgate/internal/stream"
)

// Reading the usage fields of a stream's chunks, whatever the upstream's
// JSON spacing (`"usage":{` from Azure and OpenAI, `"usage": {` from a
// server writing Python's default json.dumps).

// valueAt returns the index of the value of the first member named key (a
// quoted name) in ev for which want accepts the value, or -1.
func valueAt(ev []byte, key string, want func(v []byte) bool) (name, value int) {
	for from := 0; ; {
		i := bytes.Index(ev[from:], []byte(key))
		if i < 0 {
			return -1, -1
		}
		i += from
		j := skipSpace(ev, i+len(key))
		if j < len(ev) && ev[j] == ':' {
			j = skipSpace(ev, j+1)
			if want(ev[j:]) {
				return i, j
			}
		}
		from = i + len(key)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }

func isNull(v []byte) bool { return bytes.HasPrefix(v, []byte("null")) }

func isEmptyArray(v []byte) bool {
	if len(v) == 0 || v[0] != '[' {
		return false
	}
	j := skipSpace(v, 1)
	return j < len(v) && v[j] == ']'
}

// noChoices reports whether an event is a chunk with empty choices and no
// usage: Azure's opening prompt-filter chunk.
func noChoices(ev []byte) bool {
	_, c := valueAt(ev, `"choices"`, isEmptyArray)
	_, u := valueAt(ev, `"usage"`, isObject)
	return c >= 0 && u < 0 && !stream.IsErrorEvent(ev)
}

// usageOnly reports whether an event is the usage chunk the gateway asked
// for on the client's behalf: no choices, a usage object.
func usageOnly(ev []byte) bool {
	_, u := valueAt(ev, `"usage"`, isObject)
	if u < 0 {
		return false
	}
	_, c := valueAt(ev, `"choices"`, isEmptyArray)
	return c >= 0
}

// trimUsageNull removes the "usage": null member that asking for the usage
// chunk adds to every other chunk, in place, so the client sees the chunks
// it asked for: with the comma before it, or, when it is the first member,
// the comma after it.
func trimUsageNull(ev []byte) []byte {
	name, value := valueAt(ev, `"usage"`, isNull)
	if name < 0 {
		return ev
	}
	start, end := name, value+len("null")
	if k := lastNonSpace(ev, name); k >= 0 && ev[k] == ',' {
		start = k
	} else if e := skipSpace(ev, end); e < len(ev) && ev[e] == ',' {
		end = skipSpace(ev, e+1)
	}
	n := copy(ev[start:], ev[end:])
	return ev[:start+n]
}

// lastNonSpace returns the index of the last byte before i that is not
// white space, or -1.
func lastNonSpace(b []byte, i int) int {
	for i--; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return i
	}
	return -1
}
