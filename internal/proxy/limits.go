package proxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/ratelimit"
)

// admit takes the request from its key's limits. It answers the client
// itself and returns false when the request may not go on.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, cfg *Config, key *auth.Key, q *request) bool {
	lim, ok := cfg.Limits[key.ID]
	if !ok || lim.Unlimited() {
		return true
	}
	var d ratelimit.Decision
	err := h.askStore(r, cfg, func(ctx context.Context) (err error) {
		d, err = h.store.Admit(ctx, string(key.ID), lim, q.estimate)
		return err
	})
	q.limiter = h.store
	if err != nil {
		if !cfg.StoreFailOpen {
			limitsUnavailable(w, q)
			return false
		}
		// Fail open on local limits: this instance enforces them alone.
		q.limiter = h.local
		if d, err = h.local.Admit(r.Context(), string(key.ID), lim, q.estimate); err != nil {
			return true
		}
	}
	q.remRequests, q.remTokens, q.tokenLimit, q.limited, q.limits = d.RemainingRequests, d.RemainingTokens, d.TokenLimit, true, lim
	if !d.Allowed {
		hd := w.Header()
		after := d.RetryAfter
		if d.Reason == ratelimit.ReasonTPM && after > inFlightHint && d.RemainingTokens >= 0 &&
			d.RemainingTokens+h.reserved.get(key.ID) >= q.estimate {
			// The window holds requests still running at their estimate
			// (prompt plus max_tokens). When they end, their true usage
			// replaces it and may free enough at once: RetryAfter counts
			// them in full, so it would send a client away for up to a
			// minute for nothing. Look again soon instead.
			after = inFlightHint
		}
		setRetryAfter(hd, after)
		setRemaining(hd, q)
		secs := strconv.FormatInt(int64((after+time.Second-1)/time.Second), 10)
		msg := "This key has exceeded its " + reasonText(d.Reason) + ". Please retry after " + secs + " seconds."
		if d.Reason == ratelimit.ReasonDailyQuota || d.Reason == ratelimit.ReasonMonthlyQuota {
			hd.Set("X-Should-Retry", "false")
		}
		if d.Reason == ratelimit.ReasonTPM && lim.TPM > 0 && q.estimate > lim.TPM {
			// No wait helps a request larger than the whole limit: say so,
			// and keep SDKs from retrying it.
			hd.Set("X-Should-Retry", "false")
			msg = "This request is estimated at " + strconv.FormatInt(q.estimate, 10) + " tokens (prompt plus max_tokens), more than this key's tokens-per-minute limit of " +
				strconv.FormatInt(lim.TPM, 10) + ": it can never be admitted. Lower max_tokens or shorten the prompt."
		}
		writeError(w, q, http.StatusTooManyRequests, typeRateLimit, "429", msg)
		return false
	}
	q.reservation, q.limits = d.Reservation, lim
	return true
}

// inFlightHint is the Retry-After of a key's tokens-per-minute 429 while
// its own requests in flight, once settled at their true usage, could make
// room for the request.
const inFlightHint = time.Second

func reasonText(r string) string {
	switch r {
	case ratelimit.ReasonRPM:
		return "requests-per-minute limit"
	case ratelimit.ReasonTPM:
		return "tokens-per-minute limit"
	case ratelimit.ReasonDailyQuota:
		return "daily token quota"
	case ratelimit.ReasonMonthlyQuota:
		return "monthly token quota"
	}
	return "limit"
}

// setRemaining shows what the key has left, as Azure's headers do, with
// the key's limits beside it (not the upstream's, which would make
// remaining ÷ limit meaningless).
func setRemaining(h http.Header, q *request) {
	if !q.limited {
		return
	}
	if q.remRequests >= 0 {
		h["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatInt(q.remRequests, 10)}
		if q.limits.RPM > 0 {
			h["X-Ratelimit-Limit-Requests"] = []string{strconv.FormatInt(q.limits.RPM, 10)}
		}
	}
	if q.remTokens >= 0 {
		// The limit shown is the one the remaining tokens are of: tpm, or
		// the daily or monthly quota when that leaves less.
		h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.FormatInt(q.remTokens, 10)}
		if q.tokenLimit > 0 {
			h["X-Ratelimit-Limit-Tokens"] = []string{strconv.FormatInt(q.tokenLimit, 10)}
		} else {
			delete(h, "X-Ratelimit-Limit-Tokens")
		}
	}
}

// settle reconciles the key's reservation with the tokens the request
// really used, and counts its usage. It runs after the client has its
// answer, on a context the client's leaving does not cancel.
func (h *Handler) settle(r *http.Request, cfg *Config, q *request) {
	used := q.promptTokens + q.completionTokens
	answered := q.backend != "" && q.status < 300
	if h.usage != nil && q.backend != "" && (used > 0 || answered) {
		h.usage.Add(ratelimit.Usage{Key: string(q.key), Model: q.usageModel(), Backend: q.backend,
			Prompt: q.promptTokens, Completion: q.completionTokens, Requests: 1})
	}
	if q.reservation == "" {
		return
	}
	actual := used
	if used == 0 && answered {
		return // no usage reported: the estimate stands
	}
	// Off the request path: the client has its answer, and a keep-alive
	// connection its next request, without waiting for the store.
	// A local store is reconciled at once; a remote one (Redis) in the
	// background, so the next request's admission may briefly see the
	// estimate instead of the true count (the safe side of a limit).
	key, lim, res, est, lr := string(q.key), q.limits, q.reservation, q.estimate, q.limiter
	reconcile := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, cfg.StoreTimeout)
		defer cancel()
		if err := lr.Reconcile(ctx, key, lim, res, est, actual); err != nil {
			h.storeFailed(err)
		}
	}
	ctx := context.WithoutCancel(r.Context())
	if _, local := lr.(*ratelimit.Memory); local {
		reconcile(ctx)
		return
	}
	h.bg.Go(func() { reconcile(ctx) })
}

// Wait waits for the work requests left running after their answer
// (reconciling key limits); each is bounded by the store timeout.
func (h *Handler) Wait() { h.bg.Wait() }

// usageModel names the model for usage counters: the name after aliases.
func (q *request) usageModel() string {
	if q.canon != "" {
		return q.canon
	}
	if q.deployment != "" {
		return q.deployment
	}
	return "-"
}

// storeFailed records a failed call to the store: the next is tried after
// storeRetryEvery, and the gateway's record of the store's health is told.
func (h *Handler) storeFailed(err error) {
	h.storeRetryAt.Store(h.now().Add(storeRetryEvery).UnixNano())
	if h.onStoreError != nil {
		h.onStoreError(err)
	}
}

// storeOK records a call to the store that succeeded.
func (h *Handler) storeOK() {
	if h.storeRetryAt.Load() != 0 {
		h.storeRetryAt.Store(0)
	}
}

// askStore makes call to the shared store, bounded by store.timeout, and
// records how it went; errStoreDown when the store is known to be down and
// it is not this request's turn to try it again (storeProbe).
func (h *Handler) askStore(r *http.Request, cfg *Config, call func(ctx context.Context) error) error {
	if !h.storeProbe() {
		return errStoreDown
	}
	ctx, cancel := context.WithTimeout(r.Context(), cfg.StoreTimeout)
	err := call(ctx)
	cancel()
	if err != nil {
		h.storeFailed(err)
	} else {
		h.storeOK()
	}
	return err
}

// limitsUnavailable answers a request that needs the store's decision
// while it cannot be had and store.on_failure is closed.
func limitsUnavailable(w http.ResponseWriter, q *request) {
	setRetryAfter(w.Header(), time.Second) // the store is checked again every second
	writeError(w, q, http.StatusServiceUnavailable, typeServer, "limits_unavailable",
		"The gateway cannot check this key's limits right now. Please retry shortly.")
}

// storeRetryEvery is how often, while the state store is unreachable, one
// request tries it again; the others go straight to store.on_failure rather
// than each wait store.timeout for a store known to be down.
const storeRetryEvery = time.Second

// errStoreDown stands for the store's answer while it is known to be down.
var errStoreDown = errors.New("state store unreachable (tried again within a second)")

// storeProbe reports whether this request should ask the store: always while
// it answers; while it does not, one request per storeRetryEvery.
func (h *Handler) storeProbe() bool {
	at := h.storeRetryAt.Load()
	if at == 0 {
		return true
	}
	now := h.now()
	return now.UnixNano() >= at && h.storeRetryAt.CompareAndSwap(at, now.Add(storeRetryEvery).UnixNano())
}

// streamLease is how long a stream's slot in a shared store outlives its
// instance: the instance renews it every third of it while the stream
// runs, so an instance that stops frees its slots within this time.
const streamLease = 30 * time.Second

// streamSlot takes one of the key's max_streams slots: in the shared store
// when it counts streams (all replicas together), else in this instance.
// It answers the client itself and returns false when the key has its
// max open, or when the store cannot be asked and store.on_failure is
// closed. release gives the slot back.
func (h *Handler) streamSlot(w http.ResponseWriter, r *http.Request, cfg *Config, key *auth.Key, q *request, max int64) (release func(), ok bool) {
	if ss, shared := h.store.(ratelimit.StreamSlots); shared {
		var id string
		err := h.askStore(r, cfg, func(ctx context.Context) (err error) {
			id, ok, err = ss.OpenStream(ctx, string(key.ID), max, streamLease)
			return err
		})
		switch {
		case err == nil && !ok:
			tooManyStreams(w, q, max)
			return nil, false
		case err == nil:
			return h.holdSlot(ss, cfg, string(key.ID), id), true
		case !cfg.StoreFailOpen:
			limitsUnavailable(w, q)
			return nil, false
		}
		// Fail open: this instance counts the key's streams alone.
	}
	if h.streams.add(key.ID, 1) > max {
		h.streams.add(key.ID, -1)
		tooManyStreams(w, q, max)
		return nil, false
	}
	return func() { h.streams.add(key.ID, -1) }, true
}

// holdSlot renews a shared stream slot's lease while the stream runs and
// returns what gives it back.
func (h *Handler) holdSlot(ss ratelimit.StreamSlots, cfg *Config, key, id string) func() {
	s := &heldSlot{ss: ss, key: key, id: id, timeout: cfg.StoreTimeout}
	s.mu.Lock()
	s.t = time.AfterFunc(streamLease/3, s.renew)
	s.mu.Unlock()
	return s.release
}

// heldSlot is a shared stream slot in use.
type heldSlot struct {
	ss      ratelimit.StreamSlots
	key, id string
	timeout time.Duration
	mu      sync.Mutex
	t       *time.Timer
	done    bool
}

// renew extends the lease (taking the slot again if it ran out while the
// store was unreachable). The lock keeps a renewal from landing after the
// release.
func (s *heldSlot) renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	_ = s.ss.RenewStream(ctx, s.key, s.id, streamLease) // a miss is made up by the next renewal, or the slot frees itself
	cancel()
	s.t.Reset(streamLease / 3)
}

func (s *heldSlot) release() {
	s.mu.Lock()
	s.done = true
	s.t.Stop()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	_ = s.ss.CloseStream(ctx, s.key, s.id) // not given back: the lease runs out
	cancel()
}

// tooManyStreams answers a stream over its key's max_streams. When a
// stream ends cannot be known: look again in a second, if at all (the SDKs
// do not retry it).
func tooManyStreams(w http.ResponseWriter, q *request, max int64) {
	w.Header().Set("X-Should-Retry", "false")
	setRetryAfter(w.Header(), time.Second)
	writeError(w, q, http.StatusTooManyRequests, typeRateLimit, "too_many_streams",
		"This key already has "+strconv.FormatInt(max, 10)+" streams open, its limit.")
}
