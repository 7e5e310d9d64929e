package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/llmgate/llmgate/internal/balance"
	"github.com/llmgate/llmgate/internal/retry"
	"github.com/llmgate/llmgate/internal/stream"
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
}

// forward runs the attempt loop.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, cfg *Config, body []byte, q *request) {
	ctx := r.Context()
	var tried balance.Set
	last := -1
	var lastFail *failure
	for attempt := 0; attempt <= cfg.Retries; attempt++ {
		now := h.now()
		idx, wait, throttled := h.choose(cfg, tried, last, attempt, now)
		if throttled {
			// Every eligible backend is cooling down for longer than we may wait.
			h.answerThrottled(w, cfg, lastFail, wait, q)
			return
		}
		if wait > 0 && !sleep(ctx, wait) {
			q.status, q.err = statusClientClosed, errClientGone
			return
		}
		tried = tried.With(idx)
		q.attempts++
		final := attempt == cfg.Retries
		canSwitch := !final && hasUntried(cfg, tried)
		f, done := h.attempt(ctx, w, r, cfg, idx, body, q, final, canSwitch)
		if done {
			return
		}
		if ctx.Err() != nil {
			q.status, q.err = statusClientClosed, errClientGone
			return
		}
		last = idx
		lastFail = f
		if f.class == retry.Auth && !canSwitch {
			break
		}
	}
	h.answerFailure(w, lastFail, q)
}

func allOf(n int) balance.Set {
	if n >= balance.MaxCandidates {
		return ^balance.Set(0)
	}
	return balance.Set(1)<<uint(n) - 1
}

func hasUntried(cfg *Config, tried balance.Set) bool {
	return tried != allOf(len(cfg.Backends))
}

// choose picks the backend for attempt number attempt and the wait before it.
// In order: an untried available backend (no wait in Smart mode); an
// available one already tried, other than the one that just failed (the
// backoff wait); else the earliest to recover of those throttled, if that is
// within MaxWait. throttled reports that none recovers in time; wait is then
// the time until the earliest does.
func (h *Handler) choose(cfg *Config, tried balance.Set, last, attempt int, now time.Time) (idx int, wait time.Duration, throttled bool) {
	n := len(cfg.Backends)
	allowed := allOf(n)
	if last >= 0 && n > 1 {
		allowed &^= 1 << uint(last)
	}
	var avail balance.Set
	earliest, earliestIdx := time.Time{}, -1
	for i := range cfg.Backends {
		st := cfg.Backends[i].State
		if st.Available(now) {
			avail = avail.With(i)
		} else if allowed.Has(i) {
			if u := st.ThrottledUntil(); earliestIdx < 0 || u.Before(earliest) {
				earliest, earliestIdx = u, i
			}
		}
	}
	backoff := func(fresh bool) time.Duration {
		if attempt == 0 || (fresh && cfg.Mode == Smart) {
			return 0
		}
		return cfg.Backoff.Wait(attempt, h.float)
	}
	if idx, ok := balance.Pick(cfg.Cands, ^(allowed & avail &^ tried), h.rand()>>1); ok {
		return idx, backoff(true), false
	}
	if idx, ok := balance.Pick(cfg.Cands, ^(allowed & avail), h.rand()>>1); ok {
		return idx, backoff(false), false
	}
	until := earliest.Sub(now)
	if until > cfg.MaxWait {
		return earliestIdx, until, true
	}
	return earliestIdx, max(until, backoff(!tried.Has(earliestIdx))), false
}

func (h *Handler) float() float64 { return float64(h.rand()>>11) / (1 << 53) }

// attempt makes one upstream call. done reports that the client has its
// answer (or is gone); otherwise f describes the failure to retry.
func (h *Handler) attempt(ctx context.Context, w http.ResponseWriter, r *http.Request, cfg *Config, idx int, body []byte, q *request, final, canSwitch bool) (f *failure, done bool) {
	b := &cfg.Backends[idx]
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := h.outbound(actx, r, b, body, q.stream)
	b.State.Begin()
	defer b.State.End()

	resp, err := h.transport.RoundTrip(out)
	if err != nil {
		if ctx.Err() != nil {
			q.status, q.err = statusClientClosed, errClientGone
			return nil, true
		}
		reason := "conn_error"
		if isTimeout(err) {
			reason = "timeout"
		}
		q.trail = appendTrail(q.trail, b.Name, reason, 0)
		return &failure{err: err, class: retry.Transient}, false
	}
	now := h.now()
	class := retry.Classify(resp.StatusCode)
	var ra time.Duration
	if class != retry.Success {
		if d, ok := retry.After(resp.Header, now); ok {
			ra = d
			b.State.Throttle(now.Add(d))
		}
	}

	idle := newIdleTimer(cfg.StreamIdle, cancel)
	defer idle.stop()

	if class == retry.Success && isEventStream(resp.Header) {
		return h.relayStream(ctx, w, resp, b, q, final, idle)
	}

	retryable := class.Retryable() || (class == retry.Auth && canSwitch)
	if class == retry.Redirect || (retryable && !final) {
		defer resp.Body.Close()
		data, rerr := io.ReadAll(io.LimitReader(onRead(resp.Body, idle), maxErrorBody))
		q.trail = appendTrail(q.trail, b.Name, strconv.Itoa(resp.StatusCode), ra)
		if class == retry.Redirect {
			// Upstream redirects are refused: the api-key must not follow one.
			return &failure{err: errors.New("upstream redirect refused"), class: retry.Transient}, false
		}
		if rerr != nil {
			return &failure{err: rerr, class: retry.Transient}, false
		}
		return &failure{status: resp.StatusCode, header: resp.Header, body: data, class: class}, false
	}

	// Success, a caller fault, or the final attempt: relay as it is.
	defer resp.Body.Close()
	q.trail = appendTrail(q.trail, b.Name, strconv.Itoa(resp.StatusCode), ra)
	h.writeHeader(w, resp.StatusCode, resp.Header, b.Name, q)
	buf := stream.GetBuf()
	defer stream.PutBuf(buf)
	n, err := io.CopyBuffer(writerOnly{w}, onRead(resp.Body, idle), *buf)
	q.bytesOut += n
	if err != nil {
		q.err = err
	}
	return nil, true
}

// relayStream relays a 200 text/event-stream answer. Its first event is read
// before anything reaches the client: an error event there is a failure that
// may still fail over.
func (h *Handler) relayStream(ctx context.Context, w http.ResponseWriter, resp *http.Response, b *Backend, q *request, final bool, idle *idleTimer) (*failure, bool) {
	defer resp.Body.Close()
	bufp := stream.GetBuf()
	defer stream.PutBuf(bufp)
	buf := *bufp
	body := onRead(resp.Body, idle)
	n, err := stream.FirstEvent(body, buf)
	if err != nil && n == 0 {
		if ctx.Err() != nil {
			q.status, q.err = statusClientClosed, errClientGone
			return nil, true
		}
		reason := "stream_error"
		if idle.fired() {
			reason = "timeout"
		}
		q.trail = appendTrail(q.trail, b.Name, reason, 0)
		return &failure{err: err, class: retry.Transient}, false
	}
	if !final && (err != nil || stream.IsErrorEvent(buf[:n])) {
		q.trail = appendTrail(q.trail, b.Name, "200+error", 0)
		data := bytes.Clone(buf[:n])
		if err == nil {
			rest, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
			data = append(data, rest...)
		}
		return &failure{status: resp.StatusCode, header: resp.Header, body: data, err: err, class: retry.Transient}, false
	}
	q.trail = appendTrail(q.trail, b.Name, "200", 0)
	fl, ok := w.(stream.Writer)
	if !ok {
		fl = nopFlusher{w}
	}
	h.writeHeader(w, resp.StatusCode, resp.Header, b.Name, q)
	fl.Flush()
	var tail stream.Tail
	written, cerr := stream.Copy(fl, body, buf, n, &tail, nil)
	q.bytesOut += written
	if cerr == nil && !tail.Done() {
		cerr = io.ErrUnexpectedEOF
	}
	if cerr != nil {
		var we *stream.WriteError
		if errors.As(cerr, &we) || ctx.Err() != nil {
			q.err = errClientGone
			return nil, true
		}
		msg := "The upstream stream from backend " + b.Name + " broke before it was complete."
		code := "upstream_stream_broken"
		if idle.fired() {
			msg = "The upstream stream from backend " + b.Name + " stalled longer than the idle timeout."
			code = "upstream_stream_timeout"
		}
		ev := stream.ErrorEvent(&tail, msg, code)
		m, _ := fl.Write(ev)
		q.bytesOut += int64(m)
		fl.Flush()
		q.err = cerr
	}
	return nil, true
}

// answerFailure gives the client the last upstream answer unchanged, or a
// gateway error if no upstream answered.
func (h *Handler) answerFailure(w http.ResponseWriter, f *failure, q *request) {
	if f == nil {
		q.status = http.StatusBadGateway
		writeError(w, q.status, typeServer, "no_backend", "No backend could take the request.")
		return
	}
	if f.header != nil {
		h.writeHeader(w, f.status, f.header, lastBackend(q), q)
		m, _ := w.Write(f.body)
		q.bytesOut += int64(m)
		return
	}
	q.err = f.err
	if isTimeout(f.err) {
		q.status = http.StatusGatewayTimeout
		writeError(w, q.status, typeServer, "upstream_timeout", "Every upstream attempt timed out.")
		return
	}
	q.status = http.StatusBadGateway
	writeError(w, q.status, typeServer, "upstream_unreachable", "No upstream could be reached.")
}

// answerThrottled answers when every eligible backend is cooling down: 429
// with the true time until the earliest recovers.
func (h *Handler) answerThrottled(w http.ResponseWriter, cfg *Config, f *failure, until time.Duration, q *request) {
	hd := w.Header()
	hd.Set("X-Should-Retry", "false")
	if f != nil && f.header != nil && f.status == http.StatusTooManyRequests {
		h.writeHeaderWith(w, f.status, f.header, lastBackend(q), q, until)
		m, _ := w.Write(f.body)
		q.bytesOut += int64(m)
		return
	}
	setRetryAfter(hd, until)
	hd.Set("X-Llmgate-Attempts", strconv.Itoa(q.attempts))
	if len(q.trail) > 0 {
		hd.Set("X-Llmgate-Trail", string(q.trail))
	}
	q.status = http.StatusTooManyRequests
	writeError(w, q.status, typeRateLimit, "429", "Every backend for this deployment is rate limited. Retry after "+strconv.FormatInt(int64((until+time.Second-1)/time.Second), 10)+" seconds.")
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

// writerOnly hides ResponseWriter's ReadFrom so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

type nopFlusher struct{ http.ResponseWriter }

func (nopFlusher) Flush() {}
