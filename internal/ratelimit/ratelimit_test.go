package ratelimit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

func TestUsageHours(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 10, 12, 30, 0, 0, time.UTC)
	h := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		return v
	}
	tests := []struct {
		name               string
		from, to           time.Time
		wantFirst, wantEnd time.Time
	}{
		{"aligned", h("2025-06-10 09:00:00"), h("2025-06-10 11:00:00"), h("2025-06-10 09:00:00"), h("2025-06-10 11:00:00")},
		{"overlapping", h("2025-06-10 09:59:59"), h("2025-06-10 11:00:01"), h("2025-06-10 09:00:00"), h("2025-06-10 12:00:00")},
		{"empty", h("2025-06-10 10:00:00"), h("2025-06-10 10:00:00"), h("2025-06-10 10:00:00"), h("2025-06-10 10:00:00")},
		{"all time", time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
			now.Add(-ratelimit.UsageRetention).Truncate(time.Hour).Add(time.Hour), now.Add(48 * time.Hour).Truncate(time.Hour)},
		{"other zone", time.Date(2025, 6, 10, 11, 15, 0, 0, time.FixedZone("x", 2*3600)), h("2025-06-10 10:00:00"),
			h("2025-06-10 09:00:00"), h("2025-06-10 10:00:00")},
	}
	for _, tc := range tests {
		first, end := ratelimit.UsageHours(now, tc.from, tc.to)
		if !first.Equal(tc.wantFirst) || !end.Equal(tc.wantEnd) {
			t.Errorf("%s: got [%v, %v), want [%v, %v)", tc.name, first, end, tc.wantFirst, tc.wantEnd)
		}
	}
}

func TestValidateRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		key    string
		l      ratelimit.Limits
		tokens []int64
		ok     bool
	}{
		{"zero limits", "k", ratelimit.Limits{}, []int64{0}, true},
		{"all set", "k", ratelimit.Limits{RPM: 1, TPM: 1, Window: time.Millisecond, DailyTokens: 1, MonthlyTokens: ratelimit.MaxValue}, []int64{1, ratelimit.MaxValue}, true},
		{"empty key", "", ratelimit.Limits{}, nil, false},
		{"negative tpm", "k", ratelimit.Limits{TPM: -1}, nil, false},
		{"huge daily", "k", ratelimit.Limits{DailyTokens: ratelimit.MaxValue + 1}, nil, false},
		{"negative window", "k", ratelimit.Limits{Window: -time.Second}, nil, false},
		{"sub-millisecond window", "k", ratelimit.Limits{Window: time.Millisecond - 1}, nil, false},
		{"negative tokens", "k", ratelimit.Limits{}, []int64{1, -1}, false},
	}
	for _, tc := range tests {
		err := ratelimit.ValidateRequest(tc.key, tc.l, tc.tokens...)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ratelimit.ErrInvalid)) {
			t.Errorf("%s: got %v, want ok=%v (else ErrInvalid)", tc.name, err, tc.ok)
		}
	}
}
