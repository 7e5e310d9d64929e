package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/ratelimit/ratelimittest"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

func TestParseDecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reply   any
		want    ratelimit.Decision
		wantErr bool
	}{
		{"allowed", []any{int64(0), int64(4), int64(-1), int64(0), "17-abc", int64(0)},
			ratelimit.Decision{Allowed: true, RemainingRequests: 4, RemainingTokens: -1, Reservation: "17-abc"}, false},
		{"refused", []any{int64(2), int64(-1), int64(5), int64(1500), "", int64(1000)},
			ratelimit.Decision{Reason: ratelimit.ReasonTPM, RemainingRequests: -1, RemainingTokens: 5, TokenLimit: 1000, RetryAfter: 1500 * time.Microsecond}, false},
		{"five elements", []any{int64(0), int64(4), int64(-1), int64(0), "17-abc"}, ratelimit.Decision{}, true},
		{"string limit", []any{int64(0), int64(4), int64(-1), int64(0), "17-abc", "1000"}, ratelimit.Decision{}, true},
		{"nil", nil, ratelimit.Decision{}, true},
		{"string", "OK", ratelimit.Decision{}, true},
		{"short", []any{int64(0)}, ratelimit.Decision{}, true},
		{"string number", []any{"0", int64(1), int64(1), int64(0), "r", int64(0)}, ratelimit.Decision{}, true},
		{"nil element", []any{int64(0), nil, int64(1), int64(0), "r", int64(0)}, ratelimit.Decision{}, true},
		{"number reservation", []any{int64(0), int64(1), int64(1), int64(0), int64(7), int64(0)}, ratelimit.Decision{}, true},
		{"unknown reason", []any{int64(9), int64(1), int64(1), int64(0), "", int64(0)}, ratelimit.Decision{}, true},
		{"negative reason", []any{int64(-1), int64(1), int64(1), int64(0), "", int64(0)}, ratelimit.Decision{}, true},
		{"allowed without reservation", []any{int64(0), int64(1), int64(1), int64(0), "", int64(0)}, ratelimit.Decision{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDecision(tc.reply)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseDecision: got %+v, %v, want %+v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseReservation(t *testing.T) {
	t.Parallel()
	if at, n, err := parseReservation("1700000000123456-00ff00ff00ff00ff"); err != nil || at != 1700000000123456 || n != "00ff00ff00ff00ff" {
		t.Fatalf("parseReservation: got %d, %q, %v", at, n, err)
	}
	for _, r := range []string{"", "-", "17", "17-", "x-00ff00ff00ff00ff", "-1-00ff00ff00ff00ff", "17-00FF00FF00FF00FF", "17-00ff", "17-00ff00ff00ff00ff0"} {
		if _, _, err := parseReservation(r); !errors.Is(err, ratelimit.ErrInvalid) {
			t.Errorf("parseReservation(%q): got %v, want ErrInvalid", r, err)
		}
	}
}

func BenchmarkAdmit(b *testing.B) {
	srv := redistest.Start(b)
	ratelimittest.BenchmarkAdmit(b, newStore(b, srv.URL(), ""))
}

func BenchmarkAdmitParallel(b *testing.B) {
	srv := redistest.Start(b)
	ratelimittest.BenchmarkAdmitParallel(b, newStore(b, srv.URL(), ""))
}
