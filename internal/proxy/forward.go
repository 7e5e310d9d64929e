package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmgate/llmgate/internal/balance"
	"github.com/llmgate/llmgate/internal/h1"
	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/retry"
	"github.com/llmgate/llmgate/internal/stream"
	"github.com/llmgate/llmgate/internal/upstream"
	"github.com/llmgate/llmgate/internal/usage"
)

// maxErrorBody bounds a failed upstream response kept for replay to the client.
const maxErrorBody = 1 << 20

// failure is a failed attempt kept so the client can get the last upstream
// answer unchanged when every attempt fails.
type failure struct {
	status int
	header http.Header
	body   []byte
	err    error // set when no response arrived
	class  retry.Class
	ra     time.Duration // the delay the upstream asked for, if any
	from   string        // the backend that answered (with header)
}

// forward runs the attempt loop over the route's members.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, cfg *Config, rt *Route, body []byte, q *request) {
	ctx := r.Context()
	now := h.now()
	h.budget.request(now)
	if cfg.Total > 0 {
		q.hard = q.start.Add(cfg.Total)
	}
	q.deadline = q.hard
	if d := clientTimeout(r.Header); d > 0 && (cfg.Total == 0 || d < cfg.Total) {
		q.deadline = q.start.Add(d)
	}
	retries := cfg.Retries
	if n := r.Header.Get("X-Stainless-Retry-Count"); n != "" && n != "0" {
		// The client is already retrying: take a smaller share, so one call
		// never fans out into dozens of upstream calls.
		retries = min(retries, max(len(rt.Members)-1, 1))
	}
	stickyKey := h.stickyKey(cfg, r, q)
	prefer := ""
	if stickyKey != "" {
		prefer, _ = h.sticky.get(stickyKey, now)
	}

	var tried balance.Set
	last := -1
	var lastFail *failure
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 && !h.budget.allowRetry(h.now(), cfg.BudgetRatio, cfg.BudgetMinPerSecond) {
			q.err = errBudget
			break
		}
		c := choice{member: -1}
		var probe bool
		now = h.now()
		waitStart := now
		for again := false; ; again = true { // a lost race for the last slot or the probe re-chooses, within MaxWait
			if again {
				now = h.now()
			}
			c = h.choose(cfg, rt, q, tried, last, attempt, now, prefer)
			if c.blocked {
				h.answerBlocked(w, lastFail, c, q)
				return
			}
			if c.wait > 0 {
				if !q.deadline.IsZero() && now.Add(c.wait).After(q.deadline) {
					c.member = -1
					break
				}
				if !sleep(ctx, c.wait) {
					if r.Context().Err() != nil {
						interrupted(w, r, q)
						return
					}
					c.member = -1
					break
				}
				now = h.now()
			}
			st := cfg.Backends[rt.Members[c.member].Backend].State
			var ok bool
			if c.panic {
				probe, ok = st.AcquirePanic(now)
			} else {
				probe, ok = st.Acquire(now)
			}
			if ok {
				if probe {
					h.CircuitChanged(upstream.Transition{Backend: st.Name, From: upstream.Open, To: upstream.HalfOpen, Reason: "cool-down over: one probe"}, "")
				}
				break
			}
			c.member = -1
			if h.now().Sub(waitStart) >= cfg.MaxWait {
				break
			}
		}
		if c.member < 0 {
			break
		}
		m := rt.Members[c.member]
		st := cfg.Backends[m.Backend].State
		if lat := st.Latency(); attempt > 0 && !q.deadline.IsZero() && now.Add(lat).After(q.deadline) {
			// Not even a typical answer fits in the time left.
			st.Done(now, upstream.Abandoned, 0, probe)
			break
		}
		tried = tried.With(c.member)
		q.attempts++
		final := attempt == retries
		allTried := tried == allOf(len(rt.Members))
		f, done := h.attempt(ctx, w, r, cfg, rt, m, body, q, final, allTried, probe)
		if done {
			if stickyKey != "" && q.status < 300 {
				h.sticky.put(stickyKey, cfg.Backends[m.Backend].Name, h.now(), cfg.StickyTTL)
			}
			return
		}
		if r.Context().Err() != nil {
			interrupted(w, r, q)
			return
		}
		last = c.member
		if f.header != nil || lastFail == nil || lastFail.header == nil {
			// The client gets the last upstream answer: an attempt that got
			// none (a timeout, a refused connection) does not replace one.
			lastFail = f
		}
		if f.class == retry.Auth && (final || allTried) {
			break
		}
		if !q.deadline.IsZero() && !h.now().Before(q.deadline) {
			break // the deadline passed
		}
	}
	h.answerFailure(w, lastFail, q, tried == allOf(len(rt.Members)), cfg, rt)
}

var errBudget = errors.New("retry budget exhausted")

// errDeadline marks a stream cut because the request's time limit ran out.
var errDeadline = errors.New("the request's time limit ran out")

// errStreamIdle marks an answer (a stream or a body) cut because its
// upstream stalled longer than timeouts.stream_idle.
var errStreamIdle = errors.New("the upstream stalled longer than timeouts.stream_idle")

// errStreamErrorEvent marks a committed stream that the upstream ended with
// an error event.
var errStreamErrorEvent = errors.New("the upstream ended the stream with an error event")

// clientTimeout reads the SDKs' x-stainless-timeout header (seconds): the
// longest the client may still be waiting. A whole number may be a
// truncated one (the Node SDK sends Math.trunc(ms/1000): 1.9 s comes as
// "1"), so it bounds the wait at the next second, never before the client
// gives up; a fraction ("1.9", as the Python SDK sends) is taken as it is.
func clientTimeout(h http.Header) time.Duration {
	v := h.Get("X-Stainless-Timeout")
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 86400 {
		return 0
	}
	if strings.IndexAny(v, ".eE") < 0 {
		f++
	}
	return time.Duration(f * float64(time.Second))
}

// stickyKey returns the request's stickiness key, or "".
func (h *Handler) stickyKey(cfg *Config, r *http.Request, q *request) string {
	var v string
	switch k := cfg.StickyKey; {
	case k == "":
		return ""
	case k == "prompt_cache_key":
		v = string(q.fields.CacheKey)
	case k == "user":
		v = string(q.fields.User)
	case strings.HasPrefix(k, "header:"):
		v = r.Header.Get(k[len("header:"):])
	}
	if v == "" || len(v) > 512 {
		return ""
	}
	return q.deployment + "\x00" + v
}

// attempt makes one upstream call to member m. done reports that the client
// has its answer (or is gone); otherwise f describes the failure to retry.
//
// A relayed stream keeps this frame (and its callers') on its goroutine's
// stack for its whole life, so the work before and after the relay is in
// functions of their own and the bookkeeping is one deferred call: a stack
// small enough at the wait is halved by the garbage collector.
func (h *Handler) attempt(ctx context.Context, w http.ResponseWriter, r *http.Request, cfg *Config, rt *Route, m Member, body []byte, q *request, final, allTried, probe bool) (f *failure, done bool) {
	var a attemptRun // field by field: a literal would take a temporary on this frame too
	a.b, a.q, a.probe = &cfg.Backends[m.Backend], q, probe
	a.cfg, a.rt, a.allTried = cfg, rt, allTried
	a.outcome, a.label = upstream.Abandoned, OutcomeCanceled
	if h.attemptCtx != nil {
		ctx = h.attemptCtx(ctx, a.b.Name)
	}
	actx, cancel := context.WithCancel(ctx)
	a.cancel = cancel
	a.idle = newGuard(cfg.StreamIdle, q.deadline, cancel)
	defer h.finish(&a)
	a.w, a.r, a.final = w, r, final
	resp, injected, f, done := h.send(actx, m, body, &a)
	if resp != nil && injected && resp.StatusCode == http.StatusBadRequest && h.usageRefused(a.b, resp, q, r) {
		// The upstream does not take stream_options here: ask again,
		// at once and without it (it is not asked for again).
		resp, injected, f, done = h.send(actx, m, body, &a)
	}
	if resp == nil {
		return f, done
	}
	a.resp = resp
	if a.class == retry.Success && isEventStream(resp.Header) {
		f, done = h.relayStream(ctx, &a, injected)
		a.streamEnded(f, ctx)
		return f, done
	}
	// A refused credential is the gateway's, not the client's: it is never
	// relayed (the client would take the backend's 401 for its own key's).
	if a.class == retry.Redirect || a.class == retry.Auth || (a.class.Retryable() && !final) {
		return keepFailed(resp, a.b, q, a.class, a.idle, a.ra), false
	}
	// Success, a caller fault, or the final attempt: relay as it is.
	return h.relayBody(&a)
}

// attemptRun is one attempt's state, reported by finish when it ends.
type attemptRun struct {
	b       *Backend
	q       *request
	cancel  context.CancelFunc
	idle    *guard
	start   time.Time
	latency time.Duration
	ra      time.Duration // the upstream's Retry-After, if it failed with one
	status  int
	class   retry.Class
	outcome upstream.Outcome
	label   string
	probe   bool
	sent    bool // the request left: finish does the bookkeeping
	// the exchange
	w     http.ResponseWriter
	r     *http.Request
	resp  *http.Response
	final bool
	cut   bool // the upstream broke off its answer
	// the route, for a final failure's Retry-After and X-Should-Retry
	cfg      *Config
	rt       *Route
	allTried bool // every member of the route has been tried
}

// send makes the upstream call and classifies its answer. A nil response
// means the attempt is over: done and f are its result.
//
//go:noinline
func (h *Handler) send(ctx context.Context, m Member, body []byte, a *attemptRun) (resp *http.Response, injected bool, f *failure, done bool) {
	b, q, r := a.b, a.q, a.r
	a.start = h.now()
	out, injected, err := h.outbound(ctx, r, b, m, body, q)
	if err != nil {
		return nil, false, h.credentialFailed(b, q, err, a.probe), false
	}
	b.State.Reserve(q.estimate, a.start)
	a.sent = true
	resp, err = h.transport.RoundTrip(out)
	if err != nil {
		if r.Context().Err() != nil {
			q.trail = appendTrail(q.trail, b.Name, "canceled", 0)
			interrupted(a.w, r, q)
			return nil, false, nil, true
		}
		a.outcome = upstream.Failed
		a.latency = h.now().Sub(a.start)
		f, a.label = sendFailed(b, q, err, a.idle)
		if a.idle.deadlinePassed() {
			a.outcome = upstream.Abandoned // the request's time, not the backend's fault
		}
		return nil, false, f, false
	}
	now := h.now()
	a.latency = now.Sub(a.start)
	a.status = resp.StatusCode
	b.State.Observe(resp.Header, now)
	a.class = retry.Classify(resp.StatusCode)
	if d, ok := retry.Delay(a.class, resp.Header, now); ok {
		a.ra = d
		b.State.Throttle(now.Add(d))
		if h.onThrottle != nil {
			h.onThrottle(b.Name, now.Add(d))
		}
	}
	switch a.class {
	case retry.Success:
		a.outcome, a.label = upstream.OK, OutcomeOK
	case retry.CallerFault:
		a.outcome, a.label = upstream.OK, OutcomeClientError
	case retry.RateLimited:
		a.outcome, a.label = upstream.Throttled, OutcomeThrottled
	case retry.Redirect:
		a.outcome, a.label = upstream.Failed, OutcomeRedirect
	case retry.Auth:
		a.outcome, a.label = upstream.AuthFailed, OutcomeAuth
		h.logAuthRefused(b, resp.StatusCode)
	default:
		a.outcome, a.label = upstream.Failed, OutcomeServerError
	}
	a.idle.startReading()
	return resp, injected, nil, false
}

// usageRefused reports whether a 400 answers the usage chunk the gateway
// asked for on the client's behalf (an older Azure api-version, or a server
// without stream_options); it then records the refusal with the backend and
// consumes the answer. Otherwise the answer is left whole for the caller.
//
//go:noinline
func (h *Handler) usageRefused(b *Backend, resp *http.Response, q *request, r *http.Request) bool {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err == nil && bytes.Contains(data, []byte("stream_options")) {
		resp.Body.Close()
		pr := provider.Request{Style: q.style, RawQuery: r.URL.RawQuery}
		b.Provider.RefuseStreamUsage(pr)
		// The refused call was an upstream call like any other: counted in
		// x-llmgate-attempts, the trail and the metrics (not a backend fault).
		q.attempts++
		q.trail = appendTrail(q.trail, b.Name, "400", 0)
		if h.events != nil {
			h.events.Attempt(&AttemptInfo{Backend: b.Name, Model: q.deployment, Outcome: OutcomeClientError, Status: resp.StatusCode,
				Retry: q.attempts > 2, PrevBackend: q.lastBackend, PrevOutcome: q.lastOutcome})
		}
		h.log.Info("backend refuses stream_options: streams there are counted by the admission estimate",
			slog.String("backend", b.Name), slog.String("request_id", q.id))
		return true
	}
	resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(data), resp.Body), c: resp.Body}
	return false
}

// replayBody is a response body whose start was read already.
type replayBody struct {
	io.Reader
	c io.Closer
}

func (b *replayBody) Close() error { return b.c.Close() }

// streamEnded sets the outcome of an attempt whose stream relay returned.
func (a *attemptRun) streamEnded(f *failure, ctx context.Context) {
	switch {
	case a.idle.deadlinePassed():
		a.outcome, a.label = upstream.Abandoned, OutcomeDeadline
	case f != nil && a.idle.fired():
		a.outcome, a.label = upstream.Failed, OutcomeTimeout
	case f != nil:
		a.outcome, a.label = upstream.Failed, OutcomeErrorEvent
	case a.q.err == errClientGone || a.q.err == ErrShutdown:
		a.outcome, a.label = upstream.Abandoned, OutcomeCanceled
	case a.q.err == errStreamErrorEvent:
		a.outcome, a.label = upstream.Failed, OutcomeErrorEvent
	case a.q.err != nil:
		a.outcome, a.label = upstream.Failed, OutcomeStreamCut
	}
}

// finish reports an attempt that ended (also by a panic that aborts the
// client's response): the backend's state, the events, the next attempt's
// retry reason; then it stops the attempt's guard and context.
//
//go:noinline
func (h *Handler) finish(a *attemptRun) {
	if a.sent {
		if a.cut {
			a.outcome, a.label = upstream.Failed, OutcomeStreamCut
		}
		b, q := a.b, a.q
		end := h.now()
		h.doneAt(b, end, a.outcome, end.Sub(a.start), a.probe)
		if h.events != nil {
			h.events.Attempt(&AttemptInfo{Backend: b.Name, Model: q.deployment, Outcome: a.label, Status: a.status,
				Retry: q.attempts > 1, Latency: a.latency, PrevBackend: q.lastBackend, PrevOutcome: q.lastOutcome})
		}
		q.lastBackend, q.lastOutcome = b.Name, a.label
	}
	a.idle.stop()
	a.cancel()
}

// credentialFailed records an attempt that could not start: the backend's
// credential could not be had (e.g. an Entra token).
func (h *Handler) credentialFailed(b *Backend, q *request, err error, probe bool) *failure {
	q.trail = appendTrail(q.trail, b.Name, "credential_error", 0)
	if !errors.Is(err, provider.ErrTokenRecentlyFailed) { // that failure was logged when it happened
		h.log.Error("backend credential unavailable", slog.String("backend", b.Name), slog.Any("err", err))
	}
	h.done(b, upstream.Failed, 0, probe)
	if h.events != nil {
		h.events.Attempt(&AttemptInfo{Backend: b.Name, Model: q.deployment, Outcome: OutcomeAuth, Retry: q.attempts > 1,
			PrevBackend: q.lastBackend, PrevOutcome: q.lastOutcome})
	}
	q.lastBackend, q.lastOutcome = b.Name, OutcomeAuth
	return &failure{err: &credentialError{backend: b.Name, err: err}, class: retry.Auth}
}

// sendFailed describes an attempt that got no response: a connection
// error or a timeout (the guard's deadline counts as one).
func sendFailed(b *Backend, q *request, err error, idle *guard) (*failure, string) {
	reason, label := "conn_error", OutcomeConnection
	switch {
	case idle.deadlinePassed():
		err = fmt.Errorf("the request's deadline passed: %w", context.DeadlineExceeded)
		reason, label = "deadline", OutcomeDeadline
	case idle.fired():
		err = fmt.Errorf("the upstream stalled: %w", context.DeadlineExceeded)
		reason, label = "timeout", OutcomeTimeout
	case isTimeout(err):
		reason, label = "timeout", OutcomeTimeout
	case errors.Is(err, h1.ErrBadResponse):
		reason, label = "bad_response", OutcomeBadResponse // reached, but its answer is unusable
	}
	q.trail = appendTrail(q.trail, b.Name, reason, 0)
	return &failure{err: err, class: retry.Transient}, label
}

// logAuthRefused logs a backend that refused its credential.
func (h *Handler) logAuthRefused(b *Backend, status int) {
	h.log.Error("backend refused its credential: check its api_key",
		slog.String("backend", b.Name), slog.Int("status", status),
		slog.Duration("cooldown", b.State.Settings().AuthCooldown))
}

// keepFailed reads a failed answer that will be retried, keeping it (up to
// maxErrorBody) for the client should every attempt fail.
func keepFailed(resp *http.Response, b *Backend, q *request, class retry.Class, idle *guard, ra time.Duration) *failure {
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(onRead(resp.Body, idle), maxErrorBody))
	q.trail = appendTrail(q.trail, b.Name, strconv.Itoa(resp.StatusCode), ra)
	if class == retry.Redirect {
		// Upstream redirects are refused: the api-key must not follow one.
		return &failure{err: &redirectError{backend: b.Name, status: resp.StatusCode}, class: retry.Transient}
	}
	if rerr != nil {
		return &failure{err: rerr, class: retry.Transient}
	}
	return &failure{status: resp.StatusCode, header: resp.Header, body: data, class: class, ra: ra, from: b.Name}
}

// relayBody relays a non-streamed answer: a success is read ahead (up to
// the buffer) before anything is committed, so an upstream that breaks
// mid-body can still fail over; a break after the headers went out aborts
// the client's response.
// (A function of its own, so its buffers and locals are off the stack the
// attempt keeps while a stream is relayed.)
func (h *Handler) relayBody(x *attemptRun) (*failure, bool) {
	w, r, resp, b, q, class, final, idle, ra := x.w, x.r, x.resp, x.b, x.q, x.class, x.final, x.idle, x.ra
	defer resp.Body.Close()
	buf := stream.GetBuf()
	defer stream.PutBuf(buf)
	var sn usage.Sniffer
	var pre []byte // the start of a success read ahead, while a retry is still possible
	ended := false // the whole body is in pre
	if class == retry.Success {
		// Read a success ahead (up to the buffer) before committing: an
		// upstream that breaks mid-body can then still fail over, or, on
		// the last attempt, be answered with a clear error.
		m, rerr := readAhead(resp.Body, *buf, idle)
		switch {
		case rerr == io.EOF && !partial(r, resp, m):
			pre, ended = (*buf)[:m], true
		case rerr == nil:
			pre = (*buf)[:m] // larger than the buffer: the rest streams
		default:
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			rerr = idle.cause(rerr)
			x.cut = true
			q.trail = appendTrail(q.trail, b.Name, "200+cut", 0)
			return &failure{err: fmt.Errorf("%w: %w", errBodyCut, rerr), class: retry.Transient}, false
		}
	}
	q.trail = appendTrail(q.trail, b.Name, strconv.Itoa(resp.StatusCode), ra)
	clientRA := time.Duration(-1) // the upstream's own delay headers, unchanged
	if final && class != retry.Success && class != retry.CallerFault {
		clientRA = h.finalAdvice(w.Header(), x.cfg, x.rt, resp.StatusCode, ra, x.allTried)
	}
	h.writeHeaderWith(w, resp.StatusCode, resp.Header, b.Name, q, clientRA)
	idle.commit(q.hard)
	tap := class == retry.Success
	if len(pre) > 0 {
		m, werr := w.Write(pre)
		q.bytesOut += int64(m)
		if werr != nil {
			q.err = werr
			return nil, true
		}
		if !ended {
			_, _ = sn.Write(pre) // (a whole answer is read for usage after it is sent, below)
			// The buffer is full of the head of the body; copy the rest with a fresh one.
			nb := stream.GetBuf()
			defer stream.PutBuf(nb)
			buf = nb
		}
	}
	// Copy the rest by hand (no io.Writer/io.Reader wrappers to allocate),
	// telling an upstream that broke from a client that went away.
	var rerr error
	for !ended {
		n, err := resp.Body.Read(*buf)
		if n > 0 {
			idle.touch()
			m, werr := w.Write((*buf)[:n])
			q.bytesOut += int64(m)
			if tap {
				_, _ = sn.Write((*buf)[:m])
			}
			if werr != nil {
				q.err = werr
				break
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
				q.err = err
			}
			break
		}
	}
	if rerr == nil && q.err == nil && resp.ContentLength >= 0 {
		// The whole answer is written and its length is known: send it now,
		// before the bookkeeping below and after the handler (usage, limits,
		// metrics, the access log), which would otherwise hold it in
		// net/http's buffer until the handler returns.
		_ = http.NewResponseController(w).Flush()
	}
	if tap {
		if ended {
			_, _ = sn.Write(pre) // the answer is on its way: its usage costs it no time
		}
		h.account(b, q, &sn)
	}
	if rerr != nil && (r.Context().Err() == nil || stopping(r.Context())) {
		// The upstream broke (or the gateway, shutting down, cut it) after
		// the headers went out: abort the client's response so it can
		// never pass for a complete one.
		x.cut = r.Context().Err() == nil && !idle.deadlinePassed()
		if idle.deadlinePassed() {
			x.outcome, x.label = upstream.Abandoned, OutcomeDeadline
		}
		rerr = idle.cause(rerr)
		q.err = rerr
		q.cutAfterCommit()
		h.log.Warn("upstream body broke", slog.String("request_id", q.id), slog.String("backend", b.Name), slog.Any("err", rerr))
		panic(http.ErrAbortHandler)
	}
	return nil, true
}

// readAhead reads into buf until it is full (err nil) or the body ends
// (io.EOF) or fails (the error).
func readAhead(r io.Reader, buf []byte, idle *guard) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		if m > 0 {
			idle.touch()
		}
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// partial reports whether a body read to its end with m bytes fell short of
// its declared Content-Length (the upstream broke).
func partial(r *http.Request, resp *http.Response, m int) bool {
	if r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return false // a length with no body to go with it
	}
	return resp.ContentLength >= 0 && int64(m) < resp.ContentLength
}

var errRedirect = errors.New("upstream redirect refused")

// redirectError is a backend's redirect, refused.
type redirectError struct {
	backend string
	status  int
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("%s from backend %s (HTTP %d)", errRedirect, e.backend, e.status)
}
func (e *redirectError) Unwrap() error { return errRedirect }

// errBodyCut marks an upstream answer that broke before it was complete.
var errBodyCut = errors.New("upstream answer broke before it was complete")

// credentialError is a failure to get a backend's credential (an Entra ID token).
type credentialError struct {
	backend string
	err     error
}

func (e *credentialError) Error() string {
	return "credential for backend " + e.backend + ": " + e.err.Error()
}
func (e *credentialError) Unwrap() error { return e.err }

// done feeds an attempt's outcome back to the backend's state and reports
// any circuit transition.
func (h *Handler) done(b *Backend, o upstream.Outcome, latency time.Duration, probe bool) {
	h.doneAt(b, h.now(), o, latency, probe)
}

// doneAt is done at a time the caller read already.
func (h *Handler) doneAt(b *Backend, now time.Time, o upstream.Outcome, latency time.Duration, probe bool) {
	if tr, changed := b.State.Done(now, o, latency, probe); changed {
		h.CircuitChanged(tr, "")
	}
}

// CircuitChanged logs and reports a circuit's change of state, whether a
// request, a health check (via names it in the reason) or another replica
// made it, and shares an opening made here with the other replicas.
func (h *Handler) CircuitChanged(tr upstream.Transition, via string) {
	h.log.Warn("circuit state changed", slog.String("backend", tr.Backend),
		slog.String("from", tr.From.String()), slog.String("to", tr.To.String()), slog.String("reason", via+tr.Reason))
	if h.events != nil {
		h.events.Transition(tr)
	}
	if tr.To == upstream.Open && !tr.Remote && h.onCircuit != nil {
		h.onCircuit(tr.Backend, tr.Until)
	}
}

// relayStream relays a 200 text/event-stream answer. Its first event is read
// before anything reaches the client: an error event there is a failure that
// may still fail over. (The work before and after the copy is in functions
// of their own: see attempt.)
func (h *Handler) relayStream(ctx context.Context, a *attemptRun, injected bool) (*failure, bool) {
	resp, b, q := a.resp, a.b, a.q
	defer resp.Body.Close()
	var buf stream.Buf
	defer buf.Release()
	n, f, done := h.openStream(ctx, a, onRead(resp.Body, a.idle), buf.Bytes())
	if f != nil || done {
		return f, done
	}
	// The client has the head: drop what only the head needed (the upstream
	// headers, the request sent) rather than keep it for the stream's life.
	resp.Header, resp.Request = nil, nil
	fl, ok := a.w.(stream.Writer)
	if !ok {
		fl = nopFlusher{a.w}
	}
	var tail stream.Tail
	sn := new(usage.Sniffer)
	filter := stream.Filter{Tap: sn}
	if a.idle.watchesIdle() {
		filter.OnRead = a.idle.touch // a hook, not one more reader between the socket and the relay
	}
	if injected {
		filter.Drop, filter.Trim = usageOnly, trimUsageNull
	}
	written, cerr := stream.CopyFiltered(fl, resp.Body, &buf, n, &tail, filter)
	q.bytesOut += written
	h.account(b, q, sn)
	if cerr == nil && !tail.Done() && expectsDone(q.suffix) {
		if tail.EndedWithError() {
			// Ended by an error event of the upstream's own, which the
			// client has: one clear error is enough, the gateway adds none.
			q.err = errStreamErrorEvent
			return nil, true
		}
		cerr = io.ErrUnexpectedEOF
	}
	if cerr != nil {
		h.streamBroke(ctx, a, fl, &tail, cerr)
	}
	return nil, true
}

// openStream reads a stream's leading events into buf and, when they say
// nothing is wrong, writes the response head (the copy flushes it): n
// bytes of buf are then the stream's start, still to be relayed. Otherwise
// f is the failure to retry, or done says the client is gone.
//
//go:noinline
func (h *Handler) openStream(ctx context.Context, a *attemptRun, body io.Reader, buf []byte) (n int, f *failure, done bool) {
	w, resp, b, q, idle := a.w, a.resp, a.b, a.q, a.idle
	// Read past Azure's prompt-filter chunk (no choices) to the first event
	// that says something: only then is the stream committed, so that an
	// error event or a stall before the first token still fails over. The
	// last attempt has nothing to fail over to: its first event goes at once.
	skip := noChoices
	if a.final {
		skip = nil
	}
	n, err := stream.Leading(body, buf, skip)
	if err != nil && n == 0 {
		if ctx.Err() != nil && !idle.fired() {
			interrupted(w, a.r, q)
			return 0, nil, true
		}
		reason := "stream_error"
		if idle.fired() {
			reason = "timeout"
		}
		q.trail = appendTrail(q.trail, b.Name, reason, 0)
		return 0, &failure{err: err, class: retry.Transient}, false
	}
	bad := err != nil || stream.HasErrorEvent(buf[:n])
	if !a.final && bad {
		q.trail = appendTrail(q.trail, b.Name, "200+error", 0)
		data := bytes.Clone(buf[:n])
		if err == nil {
			rest, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
			data = append(data, rest...)
		}
		return 0, &failure{status: resp.StatusCode, header: resp.Header, body: data, err: err, class: retry.Transient, from: b.Name}, false
	}
	if bad {
		q.trail = appendTrail(q.trail, b.Name, "200+error", 0) // the last attempt's: relayed as it is
	} else {
		q.trail = appendTrail(q.trail, b.Name, "200", 0)
	}
	// The head is written, not flushed: the copy flushes it with the first
	// whole event, or alone before it waits (stream.CopyFiltered). An
	// upstream's Content-Length is not the client's: the relay may drop
	// events (the usage chunk it asked for), and it frames the stream itself.
	delete(resp.Header, "Content-Length")
	h.writeHeader(w, resp.StatusCode, resp.Header, b.Name, q)
	idle.commit(q.hard)
	return n, nil, false
}

// streamBroke ends a committed stream that could not be relayed to its end:
// a client that went away, or an upstream that broke off or stalled, which
// the client learns from a final error event.
//
//go:noinline
func (h *Handler) streamBroke(ctx context.Context, a *attemptRun, fl stream.Writer, tail *stream.Tail, cerr error) {
	b, q, idle := a.b, a.q, a.idle
	var we *stream.WriteError
	down := !idle.fired() && stopping(ctx)
	if errors.As(cerr, &we) || (ctx.Err() != nil && !idle.fired() && !down) {
		q.err = errClientGone
		return
	}
	msg := "The upstream stream from backend " + b.Name + " broke before it was complete."
	code := "upstream_stream_broken"
	switch {
	case idle.deadlinePassed():
		msg = "The request's time limit (timeouts.total) ran out before the stream was complete."
		code = "request_timeout"
		cerr = idle.cause(cerr)
	case down:
		msg = "The gateway is shutting down and cut the stream before it was complete."
		code = "gateway_shutdown"
		cerr = ErrShutdown
	case idle.fired():
		msg = "The upstream stream from backend " + b.Name + " stalled longer than the idle timeout."
		code = "upstream_stream_timeout"
		cerr = idle.cause(cerr)
	}
	ev := stream.ErrorEvent(tail, msg, code)
	m, _ := fl.Write(ev)
	q.bytesOut += int64(m)
	fl.Flush()
	q.err = cerr
	q.cutAfterCommit()
	if down {
		h.log.Info("stream cut: the shutdown grace period ended", slog.String("request_id", q.id), slog.String("backend", b.Name))
		return
	}
	h.log.Warn("upstream stream broke", slog.String("request_id", q.id), slog.String("backend", b.Name), slog.Any("err", cerr))
}

// account records the usage a response reported, and reconciles the
// backend's capacity reservation with it.
func (h *Handler) account(b *Backend, q *request, sn *usage.Sniffer) {
	c, ok := sn.Counts()
	if !ok {
		return
	}
	q.promptTokens, q.completionTokens = c.Prompt, c.Completion
	b.State.Reconcile(q.start, q.estimate, c.Total)
}

// expectsDone reports whether an operation's stream must end with [DONE]
// (chat completions and completions); other streams end as they please.
func expectsDone(suffix string) bool {
	return strings.HasSuffix(suffix, "/completions")
}

// answerFailure gives the client the last upstream answer unchanged, or a
// gateway error if no upstream answered. exhausted reports that every
// backend of the route was tried: the client's own retries would not help.
func (h *Handler) answerFailure(w http.ResponseWriter, f *failure, q *request, exhausted bool, cfg *Config, rt *Route) {
	if f != nil && f.header != nil && f.class == retry.Auth {
		q.err = fmt.Errorf("backend %s refused the gateway's credential (HTTP %d)", f.from, f.status)
		writeError(w, q, http.StatusBadGateway, typeServer, "backend_auth_failed",
			"Backend "+f.from+" refused the gateway's credential for it (HTTP "+strconv.Itoa(f.status)+"). Your own key was accepted; the gateway's operators must fix the backend's api_key or identity.")
		return
	}
	if f != nil && f.header != nil {
		ra := h.finalAdvice(w.Header(), cfg, rt, f.status, f.ra, exhausted)
		h.writeHeaderWith(w, f.status, f.header, f.from, q, ra)
		m, _ := w.Write(f.body)
		q.bytesOut += int64(m)
		return
	}
	if exhausted {
		w.Header().Set("X-Should-Retry", "false")
	}
	if f == nil {
		if q.err == nil {
			q.err = errors.New("no backend available in time")
		}
		q.status = http.StatusServiceUnavailable
		if !q.deadline.IsZero() && !h.now().Before(q.deadline) {
			q.status = http.StatusGatewayTimeout
			writeError(w, q, q.status, typeServer, "timeout", "The request's time ran out before a backend could answer.")
			return
		}
		writeError(w, q, q.status, typeServer, "no_backend", "No backend can take the request now.")
		return
	}
	q.err = f.err
	var ce *credentialError
	if errors.As(f.err, &ce) {
		writeError(w, q, http.StatusBadGateway, typeServer, "backend_credential_unavailable",
			"The gateway could not get a credential for backend "+ce.backend+".")
		return
	}
	if isTimeout(f.err) {
		q.status = http.StatusGatewayTimeout
		writeError(w, q, q.status, typeServer, "upstream_timeout", "No upstream answered: the last attempt timed out.")
		return
	}
	if errors.Is(f.err, errBodyCut) {
		writeError(w, q, http.StatusBadGateway, typeServer, "upstream_body_broken", "The upstream's answer broke before it was complete.")
		return
	}
	var re *redirectError
	if errors.As(f.err, &re) {
		writeError(w, q, http.StatusBadGateway, typeServer, "upstream_bad_response",
			"Backend "+re.backend+" answered with a redirect (HTTP "+strconv.Itoa(re.status)+"), which the gateway does not follow: its url in the gateway's config is not the API's.")
		return
	}
	if errors.Is(f.err, h1.ErrBadResponse) {
		writeError(w, q, http.StatusBadGateway, typeServer, "upstream_bad_response", "The last attempt's backend answered with something that is not valid HTTP.")
		return
	}
	q.status = http.StatusBadGateway
	writeError(w, q, q.status, typeServer, "upstream_unreachable", "No upstream answered: the last attempt could not reach its backend.")
}

// longWait is a wait after which a client's own retry is not worth it:
// answers telling it carry X-Should-Retry: false.
const longWait = 8 * time.Second

// finalAdvice sets X-Should-Retry on the last upstream failure the client
// gets, and returns the delay its Retry-After headers should carry (-1: the
// upstream's own, unchanged). A 429 tells the earliest time any backend of
// the route is free, not only the one that answered last; X-Should-Retry is
// false only when the client's retry cannot help soon: every backend was
// tried and none is free now, or the wait is long.
func (h *Handler) finalAdvice(hd http.Header, cfg *Config, rt *Route, status int, ra time.Duration, allTried bool) time.Duration {
	if status != http.StatusTooManyRequests || cfg == nil || rt == nil {
		if allTried {
			hd.Set("X-Should-Retry", "false")
		}
		return -1
	}
	wait := earliestFree(cfg, rt, h.now())
	if allTried && wait > 0 || wait > longWait {
		hd.Set("X-Should-Retry", "false")
	}
	if wait == 0 && ra <= 0 {
		return -1 // nothing known about when: the upstream's own answer stands
	}
	return wait
}

// answerBlocked answers when no backend can be called in time. After a
// failed attempt the client gets the last upstream answer (a 429 or 5xx,
// as it came), its Retry-After the true time until a backend can be
// called; without one, 429 when every backend cools down, or 503 when they
// are out for other reasons (circuit open, at capacity).
func (h *Handler) answerBlocked(w http.ResponseWriter, f *failure, c choice, q *request) {
	hd := w.Header()
	if c.wait > longWait || q.attempts > 0 {
		hd.Set("X-Should-Retry", "false")
	}
	if f != nil && f.header != nil && f.class.Retryable() {
		h.writeHeaderWith(w, f.status, f.header, f.from, q, c.wait)
		m, _ := w.Write(f.body)
		q.bytesOut += int64(m)
		return
	}
	setRetryAfter(hd, c.wait)
	secs := strconv.FormatInt(int64((c.wait+time.Second-1)/time.Second), 10)
	if c.throttled {
		q.status = http.StatusTooManyRequests
		writeError(w, q, q.status, typeRateLimit, "429", "Every backend for this deployment is rate limited. Please retry after "+secs+" seconds.")
		return
	}
	q.status = http.StatusServiceUnavailable
	writeError(w, q, q.status, typeServer, "no_backend", "No backend for this deployment can take the request now (circuit open, credential refused, or at capacity). Please retry after "+secs+" seconds.")
}

func lastBackend(q *request) string {
	t := q.trail
	if i := bytes.LastIndexByte(t, ','); i >= 0 {
		t = t[i+1:]
	}
	if i := bytes.IndexByte(t, ':'); i >= 0 {
		t = t[:i]
	}
	return string(t)
}

// appendTrail adds "name:outcome" (and "(ra=3s)" when the backend gave a
// delay) to the request's trail.
func appendTrail(t []byte, name, outcome string, ra time.Duration) []byte {
	if len(t) > 0 {
		t = append(t, ',')
	}
	t = append(t, name...)
	t = append(t, ':')
	t = append(t, outcome...)
	if ra > 0 {
		t = append(t, "(ra="...)
		t = append(t, ra.Round(time.Millisecond).String()...)
		t = append(t, ')')
	}
	return t
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && (ct[:17] == "text/event-stream")
}

type nopFlusher struct{ http.ResponseWriter }

func (nopFlusher) Flush() {}
