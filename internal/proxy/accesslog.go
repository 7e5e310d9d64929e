package proxy

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The access log's fast path: one JSON line per request, built by hand into
// a pooled buffer (no reflection, no per-attribute allocation) and written
// in one call. The line has the fields of the slog path, in the same names,
// so readers see no difference.

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *Handler) writeAccessLine(w io.Writer, r *http.Request, q *request, now time.Time) {
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	level := "INFO"
	if warnWorthy(q) {
		level = "WARN"
	}
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level...)
	b = append(b, `","msg":"request","request_id":`...)
	b = appendJSONString(b, q.id)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"route":"`...)
	b = append(b, routeOf(r.URL.Path)...) // (only names from the code: nothing to escape)
	b = append(b, '"')
	b = append(b, `,"key_id":`...)
	b = appendJSONString(b, string(q.key))
	for _, k := range [...]string{"team", "owner"} {
		if v := q.meta[k]; v != "" {
			b = append(b, `,"`...)
			b = append(b, k...)
			b = append(b, `":`...)
			b = appendJSONString(b, v)
		}
	}
	b = append(b, `,"deployment":`...)
	b = appendJSONString(b, q.deployment)
	b = append(b, `,"backends":`...)
	b = appendJSONBytes(b, q.trail)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(q.status), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(q.attempts), 10)
	b = append(b, `,"stream":`...)
	b = strconv.AppendBool(b, q.stream)
	b = append(b, `,"latency":`...)
	b = strconv.AppendInt(b, int64(now.Sub(q.start)), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, q.bytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, q.bytesOut, 10)
	if q.promptTokens != 0 || q.completionTokens != 0 {
		b = append(b, `,"prompt_tokens":`...)
		b = strconv.AppendInt(b, q.promptTokens, 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, q.completionTokens, 10)
	}
	if q.err != nil {
		b = append(b, `,"err":`...)
		b = appendJSONString(b, q.err.Error())
	}
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		linePool.Put(bp)
	}
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func appendJSONBytes(b, s []byte) []byte {
	return appendJSONString(b, unsafeString(s))
}
