package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

// reasons maps the admit script's reason codes.
var reasons = [...]string{"", ratelimit.ReasonRPM, ratelimit.ReasonTPM, ratelimit.ReasonDailyQuota, ratelimit.ReasonMonthlyQuota}

// Admit implements ratelimit.Limiter with one script run.
//
// A reply lost to a broken connection is retried by go-redis, so an
// admission may count twice then: the error is on the safe side.
func (s *Store) Admit(ctx context.Context, key string, l ratelimit.Limits, tokens int64) (ratelimit.Decision, error) {
	if err := ratelimit.ValidateRequest(key, l, tokens); err != nil {
		return ratelimit.Decision{}, fmt.Errorf("redis admit: %w", err)
	}
	n := nonce()
	if l.Unlimited() { // nothing to count: no round trip
		return ratelimit.Decision{Allowed: true, RemainingRequests: -1, RemainingTokens: -1,
			Reservation: strconv.FormatInt(time.Now().UnixMicro(), 10) + "-" + n}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	reply, err := s.admit.Run(ctx, s.client, s.limitKeys(key),
		l.RPM, l.TPM, l.WindowOrDefault().Microseconds(), l.DailyTokens, l.MonthlyTokens, tokens, n).Result()
	if err != nil {
		return ratelimit.Decision{}, fmt.Errorf("redis admit: %w", err)
	}
	d, err := parseDecision(reply)
	if err != nil {
		return ratelimit.Decision{}, fmt.Errorf("redis admit: %w", err)
	}
	return d, nil
}

// parseDecision reads {reason, remaining requests, remaining tokens, retry
// after (µs), reservation, token limit}.
func parseDecision(reply any) (ratelimit.Decision, error) {
	v, ok := reply.([]any)
	if !ok || len(v) != 6 {
		return ratelimit.Decision{}, fmt.Errorf("unexpected reply %T of length %d", reply, lenOf(reply))
	}
	lt, ok := v[5].(int64)
	if !ok {
		return ratelimit.Decision{}, fmt.Errorf("unexpected reply element 5: %T", v[5])
	}
	var n [4]int64
	for i := range n {
		if n[i], ok = v[i].(int64); !ok {
			return ratelimit.Decision{}, fmt.Errorf("unexpected reply element %d: %T", i, v[i])
		}
	}
	res, ok := v[4].(string)
	if !ok {
		return ratelimit.Decision{}, fmt.Errorf("unexpected reply element 4: %T", v[4])
	}
	if n[0] < 0 || n[0] >= int64(len(reasons)) {
		return ratelimit.Decision{}, fmt.Errorf("unexpected reason code %d", n[0])
	}
	d := ratelimit.Decision{
		Allowed:           n[0] == 0,
		Reason:            reasons[n[0]],
		RemainingRequests: n[1],
		RemainingTokens:   n[2],
		TokenLimit:        lt,
	}
	if d.Allowed {
		if res == "" {
			return ratelimit.Decision{}, fmt.Errorf("allowed without a reservation")
		}
		d.Reservation = res
	} else {
		d.RetryAfter = time.Duration(n[3]) * time.Microsecond
	}
	return d, nil
}

func lenOf(reply any) int {
	if v, ok := reply.([]any); ok {
		return len(v)
	}
	return -1
}

// Reconcile implements ratelimit.Limiter with one script run.
func (s *Store) Reconcile(ctx context.Context, key string, l ratelimit.Limits, reservation string, estimated, actual int64) error {
	if err := ratelimit.ValidateRequest(key, l, estimated, actual); err != nil {
		return fmt.Errorf("redis reconcile: %w", err)
	}
	at, n, err := parseReservation(reservation)
	if err != nil {
		return fmt.Errorf("redis reconcile: %w", err)
	}
	if l.Unlimited() || estimated == actual {
		return nil
	}
	windowed := "0"
	if l.Windowed() {
		windowed = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.reconcile.Run(ctx, s.client, s.limitKeys(key),
		at, n, estimated, actual, l.DailyTokens, l.MonthlyTokens, windowed).Err(); err != nil {
		return fmt.Errorf("redis reconcile: %w", err)
	}
	return nil
}

// nonce returns 16 random hex digits, unique per admission across replicas.
func nonce() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	x := rand.Uint64()
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[x&15]
		x >>= 4
	}
	return string(b[:])
}

// parseReservation reads "<admission time µs>-<nonce>".
func parseReservation(r string) (at int64, nonce string, err error) {
	ts, n, ok := strings.Cut(r, "-")
	if ok {
		at, err = strconv.ParseInt(ts, 10, 64)
	}
	if !ok || err != nil || at < 0 || len(n) != 16 || strings.Trim(n, "0123456789abcdef") != "" {
		return 0, "", fmt.Errorf("%w: malformed reservation %q", ratelimit.ErrInvalid, r)
	}
	return at, n, nil
}
