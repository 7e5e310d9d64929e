// Package proxy is the gateway's http.Handler: it authenticates the client,
// buffers the body for replay, and runs the attempt loop that joins backend
// selection, retry timing, the provider adapter and the stream relay.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/reqbody"
)

// Options configures a Handler. Zero fields take the documented defaults.
type Options struct {
	// Transport sends upstream requests. Required.
	Transport http.RoundTripper
	// Logger receives one access-log line per request. Nil discards.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Rand returns uniform random 64-bit numbers. Nil means math/rand/v2.
	Rand func() uint64
}

// Handler is the gateway. Safe for concurrent use.
type Handler struct {
	cfg       atomic.Pointer[Config]
	transport http.RoundTripper
	log       *slog.Logger
	now       func() time.Time
	rand      func() uint64
	seq       atomic.Uint64
	idPrefix  string
}

// New returns a Handler serving cfg.
func New(opts Options, cfg *Config) *Handler {
	h := &Handler{transport: opts.Transport, log: opts.Logger, now: opts.Now, rand: opts.Rand}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.rand == nil {
		h.rand = rand.Uint64
	}
	h.idPrefix = strconv.FormatUint(rand.Uint64()&0xffffffffff, 36) + "-"
	h.cfg.Store(cfg)
	return h
}

// Swap installs a new config snapshot; requests in flight keep theirs.
func (h *Handler) Swap(cfg *Config) { h.cfg.Store(cfg) }

// Config returns the snapshot in use.
func (h *Handler) Config() *Config { return h.cfg.Load() }

// request is the state of one client request; it lives on the handler's stack.
type request struct {
	start      time.Time
	id         string
	key        auth.KeyID
	deployment string
	status     int
	attempts   int
	trail      []byte
	bytesIn    int64
	bytesOut   int64
	stream     bool
	err        error
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := h.cfg.Load()
	q := request{start: h.now(), id: h.idPrefix + strconv.FormatUint(h.seq.Add(1), 36)}
	w.Header()["X-Llmgate-Request-Id"] = []string{q.id}
	defer h.logAccess(r, &q)

	path := r.URL.Path
	if !strings.HasPrefix(path, "/openai/") {
		q.status = http.StatusNotFound
		writeError(w, q.status, typeInvalidRequest, "404", "Resource not found: llmgate serves the Azure OpenAI API under /openai/.")
		return
	}
	if !cleanPath(path) {
		q.status = http.StatusBadRequest
		writeError(w, q.status, typeInvalidRequest, "invalid_path", "The request path is not a valid API path.")
		return
	}
	key := cfg.Keys.Lookup(auth.FromRequest(r.Header))
	if key == nil {
		q.status = http.StatusUnauthorized
		writeUnauthorized(w)
		return
	}
	q.key = key.ID
	q.deployment = deploymentOf(path)

	body, status, msg := readBody(r, cfg.MaxBody)
	if status != 0 {
		q.status = status
		code := "request_too_large"
		if status != http.StatusRequestEntityTooLarge {
			code = "invalid_body"
		}
		writeError(w, status, typeInvalidRequest, code, msg)
		return
	}
	q.bytesIn = int64(len(body))
	if len(body) > 0 && isJSON(r.Header.Get("Content-Type")) {
		if f, err := reqbody.Read(body); err == nil {
			q.stream = f.Stream
		}
	}
	h.forward(w, r, cfg, body, &q)
}

// cleanPath refuses dot segments and encoded slashes or dots, so a path can
// never address anything but the operation it names.
func cleanPath(p string) bool {
	if strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	return true
}

// deploymentOf returns the {id} of /openai/deployments/{id}/..., or "".
func deploymentOf(p string) string {
	const pre = "/openai/deployments/"
	if !strings.HasPrefix(p, pre) {
		return ""
	}
	rest := p[len(pre):]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func isJSON(ct string) bool {
	return ct == "" || strings.HasPrefix(ct, "application/json") || strings.Contains(ct, "+json")
}

// readBody reads the whole body, bounded by max. A non-zero status reports
// the failure to answer with.
func readBody(r *http.Request, max int64) ([]byte, int, string) {
	tooLarge := "The request body is larger than the gateway's limit of " + strconv.FormatInt(max, 10) + " bytes."
	if r.ContentLength > max {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, ""
	}
	if r.ContentLength >= 0 {
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, http.StatusBadRequest, "The request body could not be read completely."
		}
		return b, 0, ""
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, http.StatusBadRequest, "The request body could not be read completely."
	}
	if n > max {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	return buf.Bytes(), 0, ""
}

func (h *Handler) logAccess(r *http.Request, q *request) {
	ctx := r.Context()
	level := slog.LevelInfo
	if q.status >= 500 || q.status == statusClientClosed {
		level = slog.LevelWarn
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", q.id),
		slog.String("method", r.Method),
		slog.String("route", routeOf(r.URL.Path)),
		slog.String("key_id", string(q.key)),
		slog.String("deployment", q.deployment),
		slog.String("backends", string(q.trail)),
		slog.Int("status", q.status),
		slog.Int("attempts", q.attempts),
		slog.Bool("stream", q.stream),
		slog.Duration("latency", h.now().Sub(q.start)),
		slog.Int64("bytes_in", q.bytesIn),
		slog.Int64("bytes_out", q.bytesOut),
	}
	if q.err != nil {
		attrs = append(attrs, slog.String("err", q.err.Error()))
	}
	h.log.LogAttrs(ctx, level, "request", attrs...)
}

// routeOf names the operation of a path without its deployment, so logs and
// metrics never carry unbounded values.
func routeOf(p string) string {
	if d := deploymentOf(p); d != "" {
		return strings.TrimPrefix(p, "/openai/deployments/"+d)
	}
	return p
}

// errClientGone marks a request whose client went away.
var errClientGone = errors.New("client went away")

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
