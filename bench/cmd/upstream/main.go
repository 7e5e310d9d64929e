// Command upstream is the benchmark's fast fake Azure OpenAI backend: a fixed
// chat completion for plain requests and, for "stream": true, a fixed number
// of SSE chunks spaced by an interval, ending with a usage chunk and
// [DONE], with the x-ratelimit-remaining-* headers Azure sends. It does no
// work per request beyond net/http's own, so a benchmark measures the proxy.
//
//	upstream -listen 127.0.0.1:18401,127.0.0.1:18402 -events 21 -interval 10ms
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const completion = `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-2024-08-06",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today? This is a fixed benchmark answer."},` +
	`"finish_reason":"stop","logprobs":null,"content_filter_results":{}}],` +
	`"usage":{"prompt_tokens":9,"completion_tokens":14,"total_tokens":23},"system_fingerprint":"fp_bench",` +
	`"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}`

func main() {
	if err := run(); err != nil {
		log.SetFlags(0)
		log.Fatalf("upstream: %v", err)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:18401", "comma-separated `addresses` to serve on (one server each)")
	events := flag.Int("events", 21, "SSE events per stream, [DONE] and the usage chunk included (minimum 3)")
	interval := flag.Duration("interval", 10*time.Millisecond, "gap between two SSE events")
	ttft := flag.Duration("ttft", 0, "wait before the response headers of every request")
	flag.Parse()
	if *events < 3 {
		return fmt.Errorf("-events: got %d, want >= 3", *events)
	}
	h := newHandler(*events, *interval, *ttft)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var servers []*http.Server
	errc := make(chan error, 8)
	for addr := range strings.SplitSeq(*listen, ",") {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
		fmt.Printf("upstream listening on http://%s\n", ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	for _, s := range servers {
		_ = s.Close()
	}
	return nil
}

// handler serves every path the same way. Safe for concurrent use.
type handler struct {
	body     []byte
	bodyLen  []string
	events   [][]byte
	interval time.Duration
	ttft     time.Duration
	bufs     sync.Pool
}

func newHandler(events int, interval, ttft time.Duration) *handler {
	h := &handler{body: []byte(completion), bodyLen: []string{strconv.Itoa(len(completion))}, interval: interval, ttft: ttft}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	const head = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_bench",`
	content := events - 3 // then the finish chunk, the usage chunk and [DONE]
	for i := range content {
		delta := `{"content":"tok` + strconv.Itoa(i) + ` "}`
		if i == 0 {
			delta = `{"role":"assistant","content":"tok0 "}`
		}
		h.events = append(h.events, []byte(head+`"choices":[{"index":0,"delta":`+delta+`,"finish_reason":null,"content_filter_results":{}}],"usage":null}`+"\n\n"))
	}
	h.events = append(h.events,
		[]byte(head+`"choices":[{"index":0,"delta":{},"finish_reason":"stop","content_filter_results":{}}],"usage":null}`+"\n\n"),
		[]byte(head+`"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":`+strconv.Itoa(content)+`,"total_tokens":`+strconv.Itoa(9+content)+`}}`+"\n\n"),
		[]byte("data: [DONE]\n\n"))
	return h
}

// Azure's headers, set without canonicalising on every request. net/http
// never modifies these slices.
var (
	hdrJSON       = []string{"application/json"}
	hdrSSE        = []string{"text/event-stream"}
	hdrNoCache    = []string{"no-cache"}
	hdrRemainReq  = []string{"9999"}
	hdrRemainTok  = []string{"1999000"}
	hdrRequestID  = []string{"7f1c2a9e-bench-0000-0000-000000000000"}
	hdrRegion     = []string{"Sweden Central"}
	streamMarkers = [][]byte{[]byte(`"stream":true`), []byte(`"stream": true`)}
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(r.Body, 1<<20))
	stream := false
	for _, m := range streamMarkers {
		stream = stream || bytes.Contains(buf.Bytes(), m)
	}
	h.bufs.Put(buf)
	if err != nil {
		return
	}
	if h.ttft > 0 && !sleep(r.Context(), h.ttft) {
		return
	}
	hdr := w.Header()
	hdr["X-Ratelimit-Remaining-Requests"] = hdrRemainReq
	hdr["X-Ratelimit-Remaining-Tokens"] = hdrRemainTok
	hdr["Apim-Request-Id"] = hdrRequestID
	hdr["X-Ms-Region"] = hdrRegion
	if !stream {
		hdr["Content-Type"] = hdrJSON
		hdr["Content-Length"] = h.bodyLen
		_, _ = w.Write(h.body)
		return
	}
	hdr["Content-Type"] = hdrSSE
	hdr["Cache-Control"] = hdrNoCache
	rc := http.NewResponseController(w)
	var t *time.Timer
	for i, ev := range h.events {
		if i > 0 && h.interval > 0 {
			if t == nil {
				t = time.NewTimer(h.interval)
				defer t.Stop()
			} else {
				t.Reset(h.interval)
			}
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := w.Write(ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
