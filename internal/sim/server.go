package sim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. The zero value is an open, unlimited, instant simulator.
type Options struct {
	// Key is the API key clients must send as api-key or Authorization: Bearer. If empty, no
	// authentication is required.
	Key string
	// TPM is the tokens per Window each deployment admits. If zero, tokens are unlimited (and
	// the rate headers report 2147483647 tokens).
	TPM int
	// RPM is the requests per Window each deployment admits. If zero, requests are unlimited
	// (and the rate headers report 2147483647 requests).
	// (Azure grants 6 RPM per 1000 TPM.)
	RPM int
	// Window is the length of the sliding quota window. If zero, one minute.
	Window time.Duration
	// TTFT is the time to the first token. If zero, no wait.
	TTFT time.Duration
	// TokenInterval is the time between tokens. If zero, no wait.
	TokenInterval time.Duration
	// Seed seeds generated content and fault draws. Zero is a valid seed like any other.
	Seed int64
	// Region is sent in x-ms-region. If empty, the header is omitted.
	Region string
	// Faults are the faults injected from the start. The zero value injects none.
	Faults Faults
	// Now is the clock of the quota windows and of "created" fields. If nil, time.Now.
	Now func() time.Time
	// Logger receives debug logs of requests and info logs of admin changes. If nil, logs are
	// discarded.
	Logger *slog.Logger
}

// Server is a simulated Azure OpenAI resource; it implements http.Handler. Safe for concurrent
// use. Create it with New.
type Server struct {
	key      [sha256.Size]byte // digest of Options.Key
	hasKey   bool
	seed     int64
	ttft     time.Duration
	interval time.Duration
	region   string
	now      func() time.Time
	logger   *slog.Logger
	quota    *quota
	idBase   uint64 // random per Server, so ids differ across runs

	faultsMu  sync.Mutex // serializes changes of faults; readers only Load
	faults    atomic.Pointer[Faults]
	outageEnd atomic.Int64  // UnixNano on the now clock when the outage ends; 0 if none
	draws     atomic.Uint64 // fault draws so far
	ids       atomic.Uint64 // ids issued so far

	closed    chan struct{} // closed by Close
	closeOnce sync.Once

	stats counters
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	s := &Server{
		seed:     opts.Seed,
		ttft:     max(opts.TTFT, 0),
		interval: max(opts.TokenInterval, 0),
		region:   opts.Region,
		now:      opts.Now,
		logger:   opts.Logger,
		closed:   make(chan struct{}),
	}
	if opts.Key != "" {
		s.key, s.hasKey = sha256.Sum256([]byte(opts.Key)), true
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	win := opts.Window
	if win <= 0 {
		win = time.Minute
	}
	s.quota = newQuota(opts.TPM, opts.RPM, win)
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.idBase = binary.LittleEndian.Uint64(b[:])
	s.SetFaults(opts.Faults)
	return s
}

// SetFaults replaces the injected faults. Rates are applied as given; see Faults.Validate.
func (s *Server) SetFaults(f Faults) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.storeFaults(f)
}

// storeFaults publishes f with its delays as they will be used, so that
// Faults (and GET /sim/faults) report what is in effect. faultsMu must be held.
func (s *Server) storeFaults(f Faults) {
	f.RetryAfter429, f.SlowHeadersDelay = f.retryAfter429(), f.slowHeadersDelay()
	s.faults.Store(&f)
}

// Faults returns the faults in effect. RetryAfter429 and SlowHeadersDelay
// are the delays used: zero given to SetFaults reads as its default.
func (s *Server) Faults() Faults {
	return *s.faults.Load()
}

// changeFaults sets the faults to what change makes of the ones in effect,
// unless it returns an error, and returns the faults then in effect.
func (s *Server) changeFaults(change func(*Faults) error) (Faults, error) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	f := s.Faults()
	if err := change(&f); err != nil {
		return s.Faults(), err
	}
	s.storeFaults(f)
	return s.Faults(), nil
}

// StartOutage makes every request fail for d from now (on the Options.Now clock); d <= 0 ends
// a running outage.
func (s *Server) StartOutage(d time.Duration) {
	if d <= 0 {
		s.outageEnd.Store(0)
		return
	}
	s.outageEnd.Store(s.now().Add(d).UnixNano())
}

// outageRemaining returns how long the current outage lasts; 0 if there is none.
func (s *Server) outageRemaining() time.Duration {
	end := s.outageEnd.Load()
	if end == 0 {
		return 0
	}
	return max(time.Duration(end-s.now().UnixNano()), 0)
}

// Close releases hung requests and ends every latency wait. The Server goes on answering, but
// never waits again. Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/sim" || strings.HasPrefix(r.URL.Path, "/sim/") {
		s.serveAdmin(w, r)
		return
	}
	s.stats.requests.Add(1)
	h := w.Header()
	id := s.newRequestID()
	h.Set("Apim-Request-Id", id)
	h.Set("X-Request-Id", id)
	if s.region != "" {
		h.Set("X-Ms-Region", s.region)
	}
	if v := r.Header.Get("X-Ms-Client-Request-Id"); v != "" && len(v) <= 128 {
		h.Set("X-Ms-Client-Request-Id", v)
	}
	rt, routed := parseRoute(r.URL.Path)
	dep := "" // the deployment the request names, once known: its quota goes in the headers
	if routed && rt.azure && validName(rt.deployment) {
		dep = rt.deployment
	}
	f := s.faults.Load()
	if s.outageRemaining() > 0 {
		s.stats.faults[faultOutage].Add(1)
		if f.OutageReset {
			s.reset(w)
			return
		}
		s.refuse(w, dep, errUnavailable)
		return
	}
	if f.AuthBreak {
		s.stats.faults[faultAuthBreak].Add(1)
		s.refuse(w, dep, errUnauthorized)
		return
	}
	if !s.authorized(r) {
		s.refuse(w, dep, errUnauthorized)
		return
	}
	if !routed {
		s.refuse(w, dep, errNotFound)
		return
	}
	if rt.op == opModels {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			s.refuse(w, dep, methodNotAllowed())
			return
		}
		s.quotaHeaders(h, dep)
		s.writeBody(w, http.StatusOK, "application/json", []byte(modelsBody))
		return
	}
	if r.Method != http.MethodPost {
		h.Set("Allow", "POST")
		s.refuse(w, dep, methodNotAllowed())
		return
	}
	x := &exchange{w: w, r: r, id: id, route: rt, apiVersion: "v1", faults: f}
	if rt.azure {
		x.apiVersion = queryParam(r.URL.RawQuery, "api-version")
		switch {
		case x.apiVersion == "":
			s.refuse(w, dep, errNotFound)
			return
		case !validAPIVersion(x.apiVersion):
			s.refuse(w, dep, errBadVersion)
			return
		case !validName(rt.deployment):
			s.refuse(w, dep, errNoDeployment)
			return
		}
	}
	var e *apiError
	if rt.op == opTranscriptions || rt.op == opTranslations {
		x.call, e = parseAudio(w, r, rt.op)
	} else {
		var body []byte
		if body, e = readBody(w, r); e == nil {
			x.call, e = parseJSON(rt.op, body)
		}
	}
	if e != nil {
		s.refuse(w, dep, e)
		return
	}
	if rt.azure {
		x.call.model = rt.deployment
	} else if x.call.model == "" {
		s.refuse(w, dep, badRequest("model", "You must provide a model parameter."))
		return
	} else if !validName(x.call.model) {
		s.refuse(w, dep, errNoDeployment)
		return
	}
	if x.call.prompt.filter {
		s.quotaHeaders(h, x.call.model)
		s.writeBody(w, http.StatusBadRequest, "application/json", []byte(contentFilterBody))
		return
	}
	s.serve(x)
}

// exchange is one request on its way through the simulator.
type exchange struct {
	w          http.ResponseWriter
	r          *http.Request
	id         string
	route      route
	apiVersion string
	faults     *Faults
	call       *call
	fault      faultKind
}

// serve applies faults and the quota to a valid request, then answers it.
func (s *Server) serve(x *exchange) {
	ctx, c, f := x.r.Context(), x.call, x.faults
	slow := false
	if f.any() {
		x.fault, slow = drawFaults(f, uint64(s.seed), s.draws.Add(1))
		if x.fault == faultErrorEvent && !c.stream {
			x.fault = faultNone
		}
	}
	if s.logger.Enabled(ctx, slog.LevelDebug) {
		s.logger.DebugContext(ctx, "simulated request", slog.String("request_id", x.id),
			slog.String("deployment", c.model), slog.String("fault", x.fault.String()),
			slog.Bool("slow_headers", slow), slog.Bool("stream", c.stream))
	}
	var win *window
	if s.quota.enabled() {
		if win = s.quota.lookup(c.model); win == nil {
			s.refuse(x.w, "", errNoDeployment)
			return
		}
	} else {
		s.setRateHeaders(x.w.Header(), -1, -1)
	}
	if slow {
		s.stats.faults[faultSlowHeaders].Add(1)
		if !s.sleep(ctx, f.slowHeadersDelay()) {
			return
		}
	}
	if x.fault != faultNone {
		s.stats.faults[x.fault].Add(1)
	}
	if s.failBeforeAdmission(x, win) || !s.admit(x, win) {
		return
	}
	switch c.op {
	case opChat, opCompletions:
		if c.stream {
			s.stream(x)
		} else {
			s.complete(x)
		}
	case opEmbeddings:
		s.embed(x)
	case opImages:
		s.generateImages(x)
	case opTranscriptions, opTranslations:
		s.transcribe(x)
	}
}

// failBeforeAdmission answers with the faults that strike before the quota (reset, hang, 500,
// 503, injected 429) and reports whether it did.
func (s *Server) failBeforeAdmission(x *exchange, win *window) bool {
	var e *apiError
	switch x.fault {
	case faultReset:
		s.reset(x.w)
		return true
	case faultHang:
		s.hang(x.r.Context())
		return true
	case fault500:
		e = errInternal
	case fault503:
		e = errUnavailable
	case fault429:
		ra := x.faults.retryAfter429()
		if ra > 0 {
			setRetryAfter(x.w.Header(), ra)
		}
		e = overloaded(x.call.op, x.apiVersion, ra)
	default:
		return false
	}
	if win != nil { // else serve has set the headers of an unlimited quota
		requests, tokens := s.quota.peek(win, s.now())
		s.setRateHeaders(x.w.Header(), requests, tokens)
	}
	s.writeError(x.w, e)
	return true
}

// admit charges the request to the deployment's quota window, if any; over quota it answers
// 429 and returns false. Without a window (no quota), serve has set the rate headers.
func (s *Server) admit(x *exchange, win *window) bool {
	cost := x.call.cost(s.seed)
	if win != nil {
		h := x.w.Header()
		d := s.quota.admit(win, cost, s.now())
		s.setRateHeaders(h, d.remainingRequests, d.remainingTokens)
		switch {
		case d.never:
			// The same request will never fit, but the next one that does is admitted once the
			// whole window is free again: the retry headers say when that is.
			s.stats.throttled.Add(1)
			h.Set("X-Should-Retry", "false")
			setRetryAfter(h, d.retryAfter)
			s.writeError(x.w, tooLargeForQuota(x.call.op, x.apiVersion, cost, s.quota.tpm))
			return false
		case !d.admitted:
			s.stats.throttled.Add(1)
			setRetryAfter(h, d.retryAfter)
			secs := max(ceilDiv(d.retryAfter, time.Second), 1)
			s.writeError(x.w, throttled(x.call.op, x.apiVersion, d.byTokens, secs))
			return false
		}
	}
	s.stats.tokensAdmitted.Add(uint64(cost))
	return true
}

// authorized checks the api-key or Authorization: Bearer header in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if !s.hasKey {
		return true
	}
	k := r.Header.Get("Api-Key")
	if k == "" {
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			k = strings.TrimSpace(auth[7:])
		}
	}
	if k == "" {
		return false
	}
	sum := sha256.Sum256([]byte(k))
	return subtle.ConstantTimeCompare(sum[:], s.key[:]) == 1
}

// unlimitedQuota is the limit and remaining value the x-ratelimit headers report for an
// unlimited dimension (TPM or RPM of zero): the largest value a 32-bit parser accepts, far above
// any quota Azure grants a deployment, and never decremented. A client that steers by
// remaining/limit sees a full backend.
const unlimitedQuota = 1<<31 - 1

var unlimitedQuotaText = strconv.Itoa(unlimitedQuota)

// setRateHeaders sets the x-ratelimit-limit-* and x-ratelimit-remaining-* headers of both
// dimensions; a remaining value of -1 means unlimited and reports unlimitedQuota.
func (s *Server) setRateHeaders(h http.Header, requests, tokens int64) {
	if requests >= 0 {
		h.Set("X-Ratelimit-Limit-Requests", strconv.FormatInt(s.quota.rpm, 10))
		h.Set("X-Ratelimit-Remaining-Requests", strconv.FormatInt(requests, 10))
	} else {
		h.Set("X-Ratelimit-Limit-Requests", unlimitedQuotaText)
		h.Set("X-Ratelimit-Remaining-Requests", unlimitedQuotaText)
	}
	if tokens >= 0 {
		h.Set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(s.quota.tpm, 10))
		h.Set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(tokens, 10))
	} else {
		h.Set("X-Ratelimit-Limit-Tokens", unlimitedQuotaText)
		h.Set("X-Ratelimit-Remaining-Tokens", unlimitedQuotaText)
	}
}

// quotaHeaders sets the rate headers of an answer given before admission: those of deployment
// dep, or, if dep is "" (the request names no existing deployment, or not yet), the least any
// deployment has left, so that they never promise more than the meant deployment has.
func (s *Server) quotaHeaders(h http.Header, dep string) {
	requests, tokens := int64(-1), int64(-1)
	if s.quota.enabled() {
		requests, tokens = s.quota.remainingOf(dep, s.now())
	}
	s.setRateHeaders(h, requests, tokens)
}

// refuse answers e, with the rate headers of deployment dep (see quotaHeaders), to a request
// that does not reach its deployment's quota.
func (s *Server) refuse(w http.ResponseWriter, dep string, e *apiError) {
	s.quotaHeaders(w.Header(), dep)
	s.writeError(w, e)
}

// writeHead sends the status line and counts it.
func (s *Server) writeHead(w http.ResponseWriter, status int) {
	if status > 0 && status < len(s.stats.status) {
		s.stats.status[status].Add(1)
	}
	w.WriteHeader(status)
}

// writeBody sends a whole answer and counts its status.
func (s *Server) writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	if status > 0 && status < len(s.stats.status) {
		s.stats.status[status].Add(1)
	}
	writeBody(w, status, contentType, body)
}

// writeBody sends a whole answer.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// answer sends a successful non-streamed answer after the latency of tokens tokens, or half of
// it and an abort with the stream_cut fault.
func (s *Server) answer(x *exchange, contentType string, body []byte, tokens int64) {
	if !s.sleep(x.r.Context(), s.ttft+time.Duration(tokens)*s.interval) {
		return
	}
	if x.fault != faultStreamCut {
		s.writeBody(x.w, http.StatusOK, contentType, body)
		return
	}
	h := x.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	s.writeHead(x.w, http.StatusOK)
	_, _ = x.w.Write(body[:len(body)/2])
	_ = http.NewResponseController(x.w).Flush()
	s.abort()
}

// sleep waits for d; it returns false if the client left first. Close ends the wait early.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return true
	case <-ctx.Done():
		return false
	}
}

// reset closes the connection with a TCP RST, without an answer.
func (s *Server) reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.abort()
	}
	s.stats.aborted.Add(1)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// hang waits until the client leaves or the Server is closed, then aborts the connection.
func (s *Server) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.closed:
	}
	s.abort()
}

// abort ends the handler and drops the connection, the way net/http documents.
func (s *Server) abort() {
	s.stats.aborted.Add(1)
	panic(http.ErrAbortHandler)
}

// newRequestID returns a uuid-shaped id unique to this Server.
func (s *Server) newRequestID() string {
	n := s.ids.Add(1)
	a, b := mix(s.idBase, n, 3), mix(s.idBase, n, 4)
	const hexdigits = "0123456789abcdef"
	var buf [36]byte
	j := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			buf[j] = '-'
			j++
		}
		v := a
		if i >= 16 {
			v = b
		}
		buf[j] = hexdigits[(v>>(4*(i%16)))&0xf]
		j++
	}
	buf[14] = '4'               // version 4 layout
	buf[19] = "89ab"[(b>>60)&3] // RFC 4122 variant
	return string(buf[:])
}

// objectID returns prefix followed by 29 letters and digits derived from the request id.
func (s *Server) objectID(prefix, requestID string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	h := hashString(fnvOffset, requestID)
	var arr [64]byte
	buf := append(arr[:0], prefix...)
	for range 29 {
		h = mix64(h)
		buf = append(buf, alphabet[h%uint64(len(alphabet))])
	}
	return string(buf)
}

// queryParam returns the first value of name in a raw query, unescaped; "" if absent or
// malformed. It spares the map of url.Values.
func queryParam(raw, name string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != name {
			continue
		}
		u, err := url.QueryUnescape(v)
		if err != nil {
			return ""
		}
		return u
	}
	return ""
}
