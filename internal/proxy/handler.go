// Package proxy is the gateway's http.Handler: it authenticates the client,
// buffers the body for replay, and runs the attempt loop that joins backend
// selection, retry timing, the provider adapter and the stream relay.
package proxy

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/internal/apiop"
	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/reqbody"
	"github.com/llmgate/llmgate/internal/usage"
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
	// Events receives circuit transitions and other observations. Nil: none.
	Events Events
	// Store holds key limits (shared across replicas when it is Redis). Nil: in memory.
	Store ratelimit.Limiter
	// Usage counts usage per key, model and backend. Nil: not counted.
	Usage *ratelimit.Batcher
	// OnThrottle is told when a backend asks to be left alone until a time,
	// so replicas can share it. Must not block. Nil: not shared.
	OnThrottle func(backend string, until time.Time)
	// OnCircuitOpen is told when a backend's circuit opens here, until its
	// probe, so replicas can share it. Must not block. Nil: not shared.
	OnCircuitOpen func(backend string, until time.Time)
	// OnStoreError is told of a failed call to Store, for the gateway's one
	// record of the store's health (which logs the outage once and shows
	// it on /healthz). Must not block. Nil: not told.
	OnStoreError func(error)
	// AttemptContext, when set, derives each upstream attempt's context
	// from the request's and the backend's name (tracing names the
	// attempt's span with it). Nil: the attempt uses the request's context.
	AttemptContext func(ctx context.Context, backend string) context.Context
	// AccessLog, when set, receives the access log as JSON lines written by
	// the fast path (one Write per line, safe for concurrent use); Logger
	// then carries only the other events. Nil: the access log goes to Logger.
	AccessLog io.Writer
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
	budget    budget
	sticky    *stickyTable
	events    Events
	store     ratelimit.Limiter
	local     *ratelimit.Memory // fallback while the store is unreachable
	// storeRetryAt is when the unreachable store is next tried (Unix ns; 0 while it answers)
	storeRetryAt atomic.Int64
	onStoreError func(error)
	usage        *ratelimit.Batcher
	onThrottle   func(string, time.Time)
	onCircuit    func(string, time.Time)
	attemptCtx   func(context.Context, string) context.Context
	streams      counters
	reserved     counters // tokens this replica's admitted requests of a key hold at their estimate, until settled
	accessLog    io.Writer
	bg           sync.WaitGroup // reconciliations still running after their request
}

// New returns a Handler serving cfg.
func New(opts Options, cfg *Config) *Handler {
	h := &Handler{transport: opts.Transport, log: opts.Logger, now: opts.Now, rand: opts.Rand, events: opts.Events,
		store: opts.Store, usage: opts.Usage, onThrottle: opts.OnThrottle, onCircuit: opts.OnCircuitOpen, onStoreError: opts.OnStoreError, accessLog: opts.AccessLog,
		attemptCtx: opts.AttemptContext}
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
	h.sticky = newStickyTable(100000)
	h.local = ratelimit.NewMemory(h.now)
	if h.store == nil {
		h.store = h.local
	}
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
	secret     string // the credential the client presented: kept from every upstream request; never logged
	deployment string
	status     int
	attempts   int
	trail      []byte
	bytesIn    int64
	bytesOut   int64
	stream     bool
	err        error
	cut        bool // the answer broke after its head went out (the trail says +cut)
	// set once the request is parsed
	style     provider.Style
	suffix    string      // the operation: path after /openai/deployments/{id}, /v1 or /openai/v1; for AzureOther the whole path
	canon     string      // the deployment or model name after aliases
	bodyModel string      // the model the body carries, if any
	rewritten bodyVariant // the last body rewritten for an upstream
	fields    reqbody.Fields
	estimate  int64     // tokens estimated at admission
	deadline  time.Time // the whole request's: timeouts.total, or the client's x-stainless-timeout if sooner
	hard      time.Time // timeouts.total's alone: what bounds an answer the client has begun to get
	ttfb      time.Duration
	backend   string // the backend that answered last
	// the last attempt's backend and outcome: the next attempt's retry reason
	lastBackend, lastOutcome string
	// usage reported upstream, 0 if unknown
	promptTokens, completionTokens int64
	meta                           map[string]string // the key's team and owner
	// key limits
	limited                bool
	remRequests, remTokens int64
	tokenLimit             int64 // the key's limit remTokens is of
	reservation            string
	limits                 ratelimit.Limits
	limiter                ratelimit.Limiter
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := h.cfg.Load()
	// Field by field: a composite literal would be built in a temporary on
	// this frame, which a relayed stream keeps on its stack for its life.
	q := new(request)
	q.start = h.now()
	q.id = h.idPrefix + strconv.FormatUint(h.seq.Add(1), 36)
	w.Header()["X-Llmgate-Request-Id"] = []string{q.id}
	defer h.logAccess(r, q)

	route, key, body := h.prepare(w, r, cfg, q)
	if route == nil {
		return
	}
	if q.stream {
		if max := cfg.MaxStreams[key.ID]; max > 0 {
			release, ok := h.streamSlot(w, r, cfg, key, q, max)
			if !ok {
				return
			}
			defer release()
		}
	}
	if !h.admit(w, r, cfg, key, q) {
		return
	}
	if q.reservation != "" && q.limits.TPM > 0 {
		h.reserved.add(key.ID, q.estimate)
		defer h.reserved.add(key.ID, -q.estimate)
	}
	h.forward(w, r, cfg, route, body, q)
	h.settle(r, cfg, q)
}

// prepare checks and reads a request up to the choice of its route: path,
// key, body, model. It answers the client itself, and returns a nil route,
// when the request goes no further. (A function of its own, so its locals
// are off the stack that a relayed stream keeps.)
func (h *Handler) prepare(w http.ResponseWriter, r *http.Request, cfg *Config, q *request) (*Route, *auth.Key, []byte) {
	path := r.URL.Path
	if !cleanPath(r.URL) {
		writeError(w, q, http.StatusBadRequest, typeInvalidRequest, "invalid_path", "The request path is not a valid API path.")
		return nil, nil, nil
	}
	var ok bool
	if q.style, q.deployment, q.suffix, ok = parsePath(path); !ok {
		writeError(w, q, http.StatusNotFound, typeInvalidRequest, "404", "Resource not found: llmgate serves the Azure OpenAI API under /openai/ and the OpenAI API under /v1/.")
		return nil, nil, nil
	}
	if cfg.MaxHeader > 0 && headSize(r) > cfg.MaxHeader {
		writeError(w, q, http.StatusRequestHeaderFieldsTooLarge, typeInvalidRequest, "headers_too_large",
			"The request line and headers are larger than the gateway's limit of "+strconv.Itoa(cfg.MaxHeader)+" bytes.")
		return nil, nil, nil
	}
	presented := auth.FromRequest(r.Header)
	key := cfg.Keys.Lookup(presented)
	if key == nil {
		writeUnauthorized(w, q)
		return nil, nil, nil
	}
	q.key, q.meta, q.secret = key.ID, key.Meta, presented
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// Every style's "list models" and "retrieve model" (the SDKs'
		// models.list and models.get), Azure's /openai/models included:
		// what this key may use, never a backend's whole catalogue.
		models := ""
		switch q.style {
		case provider.OpenAI, provider.AzureV1:
			models = q.suffix
		case provider.AzureOther:
			models, _ = strings.CutPrefix(q.suffix, "/openai")
		}
		if models == "/models" {
			h.listModels(w, cfg, key, q)
			return nil, nil, nil
		}
		if id, ok := strings.CutPrefix(models, "/models/"); ok && id != "" {
			h.getModel(w, cfg, key, q, id)
			return nil, nil, nil
		}
	}

	// The request's total time bounds reading its body too (a client
	// trickling its body must not hold the gateway past it).
	rc := http.NewResponseController(w)
	deadlineSet := cfg.Total > 0 && rc.SetReadDeadline(q.start.Add(cfg.Total)) == nil
	body, status, msg := readBody(r, cfg.MaxBody)
	if deadlineSet && status == 0 {
		// Read in time; on a failure the deadline stays, so that net/http's
		// discard of the unread rest cannot hold the connection either.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if status != 0 {
		code := "request_too_large"
		switch {
		case status == http.StatusBadRequest && deadlineSet && !h.now().Before(q.start.Add(cfg.Total)):
			status, code, msg = http.StatusRequestTimeout, "request_timeout", "The request body did not arrive within the gateway's time limit."
		case status != http.StatusRequestEntityTooLarge:
			code = "invalid_body"
		}
		// The rest of the body is not worth reading: close the connection.
		w.Header().Set("Connection", "close")
		writeError(w, q, status, typeInvalidRequest, code, msg)
		return nil, nil, nil
	}
	q.bytesIn = int64(len(body))
	if ce := r.Header.Get("Content-Encoding"); ce != "" && len(body) > 0 {
		var status int
		var code string
		if body, status, code, msg = decodeBody(ce, body, cfg.MaxBody); status != 0 {
			writeError(w, q, status, typeInvalidRequest, code, msg)
			return nil, nil, nil
		}
		// The upstream gets the body as the gateway read it.
		delete(r.Header, "Content-Encoding")
	}
	q.fields.MaxTokens = -1
	ct := r.Header.Get("Content-Type")
	if len(body) > 0 && isJSON(ct, body) {
		if f, err := reqbody.Read(body); err == nil {
			q.fields = f
			q.stream = f.Stream
		}
	}
	if q.style == provider.OpenAI || q.style == provider.AzureV1 {
		switch {
		case q.fields.Model != nil:
			q.deployment = string(q.fields.Model)
		case hasPrefixFold(ct, "multipart/"):
			if m, found, err := reqbody.MultipartField(body, ct, "model"); err == nil && found {
				q.deployment = m
			}
		}
		q.bodyModel = q.deployment
		if q.deployment == "" && r.Method == http.MethodPost && apiop.RunsModel(q.suffix) {
			// The model selects the route: without one there is no
			// deployment to call (an Azure backend would be sent an empty
			// name), and no backend should pay for the client's mistake.
			writeError(w, q, http.StatusBadRequest, typeInvalidRequest, "missing_model", "you must provide a model parameter")
			return nil, nil, nil
		}
	}
	if hasPrefixFold(ct, "multipart/") {
		// An upload (audio to transcribe, an image to edit) is no prompt
		// text: its bytes are not tokens. It counts against rpm, and by
		// the usage its answer reports, if any.
		q.estimate = 0
	} else {
		q.estimate = usage.Estimate(len(body), q.fields.MaxTokens, q.fields.Choices())
	}
	route := resolve(cfg, q)
	if q.deployment != "" && !key.Allows(q.deployment, q.canon) {
		writeError(w, q, http.StatusForbidden, "permission_error", "model_not_allowed", "This key may not use "+strconv.Quote(q.deployment)+".")
		return nil, nil, nil
	}
	if route == nil {
		writeError(w, q, http.StatusNotFound, typeInvalidRequest, "DeploymentNotFound", "The API deployment for this resource does not exist: no backend serves "+strconv.Quote(q.deployment)+".")
		return nil, nil, nil
	}
	return route, key, body
}

// parsePath tells the style of a request path and splits it into the
// deployment (Azure style only) and the operation.
func parsePath(p string) (style provider.Style, dep, op string, ok bool) {
	st, dep, op, ok := apiop.Split(p)
	switch {
	case !ok:
		return 0, "", "", false
	case st == apiop.Deployments:
		if !validName(dep) {
			return 0, "", "", false
		}
		return provider.Azure, dep, op, true
	case st == apiop.AzureV1:
		return provider.AzureV1, "", op, true
	case st == apiop.V1:
		return provider.OpenAI, "", op, true
	}
	return provider.AzureOther, "", p, true
}

// validName bounds a deployment or model name taken from a request.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// resolve returns the route serving the request's deployment or model
// (after aliases), or nil when no backend serves it. A request that names
// none goes to every backend.
func resolve(cfg *Config, q *request) *Route {
	if q.deployment == "" {
		return cfg.All
	}
	if !validName(q.deployment) {
		return nil
	}
	q.canon = q.deployment
	if a, ok := cfg.Aliases[q.deployment]; ok {
		q.canon = a
	}
	if rt, ok := cfg.Routes[q.canon]; ok {
		return rt
	}
	return cfg.Wildcard
}

// cleanPath refuses dot segments, empty segments, control characters and
// encoded slashes, backslashes or dots, so a path can never address anything
// but the operation it names.
func cleanPath(u *url.URL) bool {
	p := u.Path
	if len(p) > 2048 || strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	if rp := u.RawPath; rp != "" {
		l := strings.ToLower(rp)
		if strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(l, "%2e") {
			return false
		}
	}
	return true
}

// isJSON reports whether a request body is read as JSON: labelled so (media
// types are case-insensitive), or unlabelled, or labelled otherwise but
// plainly a JSON object, as upstreams read such a body anyway (curl -d sends
// a JSON body as form-urlencoded). Only multipart bodies are never read as
// JSON. Reading it is what bounds streams per key and estimates tokens, so
// a label must not be a way around them.
func isJSON(ct string, body []byte) bool {
	if ct == "" || hasPrefixFold(ct, "application/json") || containsFold(ct, "+json") {
		return true
	}
	if hasPrefixFold(ct, "multipart/") {
		return false
	}
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
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

// decodeBody decodes a request body sent with a Content-Encoding (gzip or
// deflate; identity is no encoding), so that the gateway reads its model
// and limits from it and the upstream gets it plain. The decoded body is
// bounded by max like any other. A non-zero status reports the failure.
func decodeBody(encoding string, body []byte, max int64) (plain []byte, status int, code, msg string) {
	var zr io.ReadCloser
	var err error
	name := strings.ToLower(strings.TrimSpace(encoding))
	switch name {
	case "identity":
		return body, 0, "", ""
	case "gzip", "x-gzip":
		zr, err = gzip.NewReader(bytes.NewReader(body))
	case "deflate":
		zr, err = zlib.NewReader(bytes.NewReader(body))
	default:
		if len(encoding) > 40 {
			encoding = encoding[:40] + "…"
		}
		return nil, http.StatusUnsupportedMediaType, "unsupported_content_encoding",
			"The gateway reads request bodies plain or sent with Content-Encoding gzip or deflate, not " + strconv.QuoteToASCII(encoding) + "."
	}
	invalid := "The request body is not valid " + name + " data, as its Content-Encoding says."
	if err != nil {
		return nil, http.StatusBadRequest, "invalid_body", invalid
	}
	defer zr.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, max+1))
	switch {
	case n > max:
		return nil, http.StatusRequestEntityTooLarge, "request_too_large",
			"The request body, decoded, is larger than the gateway's limit of " + strconv.FormatInt(max, 10) + " bytes."
	case err != nil:
		return nil, http.StatusBadRequest, "invalid_body", invalid
	}
	return buf.Bytes(), 0, "", ""
}

func (h *Handler) logAccess(r *http.Request, q *request) {
	if r.Method == http.MethodHead {
		q.bytesOut = 0 // the server sends no body, whatever was written
	}
	ctx := r.Context()
	now := h.now()
	if h.events != nil {
		h.events.Request(&RequestInfo{
			Route: apiop.Label(q.suffix), Model: q.deployment, Key: string(q.key), Backend: q.backend,
			Status: q.status, Attempts: q.attempts, Stream: q.stream, Duration: now.Sub(q.start), TTFB: q.ttfb,
			PromptTokens: q.promptTokens, CompletionTokens: q.completionTokens,
		})
	}
	if h.accessLog != nil {
		h.writeAccessLine(h.accessLog, r, q, now)
		return
	}
	level := slog.LevelInfo
	if warnWorthy(q) {
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
		slog.Duration("latency", now.Sub(q.start)),
		slog.Int64("bytes_in", q.bytesIn),
		slog.Int64("bytes_out", q.bytesOut),
	}
	for _, k := range [...]string{"team", "owner"} {
		if v := q.meta[k]; v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	if q.promptTokens != 0 || q.completionTokens != 0 {
		attrs = append(attrs, slog.Int64("prompt_tokens", q.promptTokens), slog.Int64("completion_tokens", q.completionTokens))
	}
	if q.err != nil {
		attrs = append(attrs, slog.String("err", q.err.Error()))
	}
	h.log.LogAttrs(ctx, level, "request", attrs...)
}

// routeOf names the operation of a path, never the path itself (a client
// writes it, secrets included): the API style's prefix, the deployment as
// {id}, and a known operation or "other". It allocates nothing.
func routeOf(p string) string {
	st, _, op, ok := apiop.Split(p)
	if !ok {
		return apiop.Other
	}
	return routeNames[st][apiop.Index(op)]
}

// routeNames are routeOf's answers: each API style's prefix with each
// operation label.
var routeNames = func() (t [len(apiop.Prefixes)][len(apiop.Labels)]string) {
	for i, pre := range apiop.Prefixes {
		if i == apiop.Deployments {
			pre += "{id}/"
		}
		for j, op := range apiop.Labels {
			t[i][j] = pre + op
		}
	}
	return t
}()

// errClientGone marks a request whose client went away.
var errClientGone = errors.New("client went away")

// ErrShutdown is the cause with which the server cancels the requests still
// running when the shutdown grace period ends (h1.Server.CancelRequests,
// or the net/http server's base context). A request not yet answered gets
// a 503 its client retries elsewhere; a stream gets a last error event,
// so neither passes for a client that left.
var ErrShutdown = errors.New("the gateway is shutting down")

// stopping reports whether ctx ended because the gateway is shutting down.
func stopping(ctx context.Context) bool { return context.Cause(ctx) == ErrShutdown }

// interrupted answers a request whose context ended before its answer
// began: a client that left gets nothing (499 in the access log), a
// gateway shutting down answers 503 for the client to send it again.
func interrupted(w http.ResponseWriter, r *http.Request, q *request) {
	if !stopping(r.Context()) {
		q.status, q.err = statusClientClosed, errClientGone
		return
	}
	w.Header().Set("X-Should-Retry", "true")
	writeError(w, q, http.StatusServiceUnavailable, typeServer, "gateway_shutdown",
		"The gateway is shutting down and could not finish the request in time; send it again.")
	q.err = ErrShutdown
}

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

// warnWorthy reports whether a request's access line is a warning: a
// failure the gateway answered (5xx), a client that left, or a 200 whose
// answer failed after all (cut, or ended by the upstream's error event).
func warnWorthy(q *request) bool {
	return q.status >= 500 || q.status == statusClientClosed || q.cut || (q.status < 300 && q.err != nil)
}

// cutAfterCommit records that the answer broke after its head went out:
// the status the client got is the upstream's 200, but the access line
// says what happened (its trail's last attempt +cut, at WARN).
func (q *request) cutAfterCommit() {
	if !q.cut {
		q.cut = true
		q.trail = append(q.trail, "+cut"...)
	}
}

// headSize is the size of r's head as it came: the request line and the
// header fields (as net/http's MaxHeaderBytes counts them), so that a long
// query string is bounded like a long header.
func headSize(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// counters counts per key; safe for concurrent use.
type counters struct {
	m sync.Map // auth.KeyID → *atomic.Int64
}

func (c *counters) add(k auth.KeyID, d int64) int64 {
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Int64))
	}
	return v.(*atomic.Int64).Add(d)
}

// get returns k's count.
func (c *counters) get(k auth.KeyID) int64 {
	if v, ok := c.m.Load(k); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}
