package ratelimit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

func TestPlanUsage(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 10, 12, 30, 20, 0, time.UTC)
	at := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		return v
	}
	split := at("2025-06-09 11:00:00") // first hour boundary after now-26h
	none := ratelimit.UsagePlan{HourFrom: split, HourTo: split, MinuteFrom: split, MinuteTo: split}
	tests := []struct {
		name     string
		from, to time.Time
		want     ratelimit.UsagePlan
	}{
		{"recent, aligned", at("2025-06-10 09:00:00"), at("2025-06-10 11:00:00"),
			ratelimit.UsagePlan{HourFrom: split, HourTo: split, MinuteFrom: at("2025-06-10 09:00:00"), MinuteTo: at("2025-06-10 11:00:00")}},
		{"recent, overlapping", at("2025-06-10 09:59:59"), at("2025-06-10 11:00:01"),
			ratelimit.UsagePlan{HourFrom: split, HourTo: split, MinuteFrom: at("2025-06-10 09:59:00"), MinuteTo: at("2025-06-10 11:01:00")}},
		{"last 24 hours", now.Add(-24 * time.Hour), now,
			ratelimit.UsagePlan{HourFrom: split, HourTo: split, MinuteFrom: at("2025-06-09 12:30:00"), MinuteTo: at("2025-06-10 12:31:00")}},
		{"old", at("2025-06-01 09:10:00"), at("2025-06-01 10:20:00"),
			ratelimit.UsagePlan{HourFrom: at("2025-06-01 09:00:00"), HourTo: at("2025-06-01 11:00:00"), MinuteFrom: split, MinuteTo: split}},
		{"old to recent", at("2025-06-01 09:10:00"), at("2025-06-10 10:20:30"),
			ratelimit.UsagePlan{HourFrom: at("2025-06-01 09:00:00"), HourTo: split, MinuteFrom: split, MinuteTo: at("2025-06-10 10:21:00")}},
		{"empty", at("2025-06-10 10:00:00"), at("2025-06-10 10:00:00"), none},
		{"reversed", at("2025-06-10 10:00:00"), at("2025-06-10 09:00:00"), none},
		{"future", now.Add(time.Hour), now.Add(2 * time.Hour), none},
		{"all time", time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
			ratelimit.UsagePlan{HourFrom: now.Add(-ratelimit.UsageRetention).Truncate(time.Hour).Add(time.Hour), HourTo: split,
				MinuteFrom: split, MinuteTo: at("2025-06-10 12:36:00")}},
		{"other zone", time.Date(2025, 6, 10, 11, 15, 0, 0, time.FixedZone("x", 2*3600)), at("2025-06-10 10:00:00"),
			ratelimit.UsagePlan{HourFrom: split, HourTo: split, MinuteFrom: at("2025-06-10 09:15:00"), MinuteTo: at("2025-06-10 10:00:00")}},
	}
	for _, tc := range tests {
		got := ratelimit.PlanUsage(now, tc.from, tc.to)
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestUsagePlanSpan(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 10, 12, 30, 20, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		from, to         time.Time
		wantFrom, wantTo time.Time
		ok               bool
	}{
		{"minutes", now.Add(-90 * time.Second), now, now.Add(-140 * time.Second), now.Add(40 * time.Second), true},
		{"hours and minutes", now.Add(-30*time.Hour - 20*time.Minute), now,
			now.Add(-30*time.Hour - 30*time.Minute - 20*time.Second), now.Add(40 * time.Second), true},
		{"hours", now.Add(-72 * time.Hour), now.Add(-71*time.Hour - 30*time.Minute),
			now.Add(-72*time.Hour - 30*time.Minute - 20*time.Second), now.Add(-71*time.Hour + 29*time.Minute + 40*time.Second), true},
		{"nothing", now, now, time.Time{}, time.Time{}, false},
	} {
		from, to, ok := span(ratelimit.PlanUsage(now, tc.from, tc.to))
		if ok != tc.ok || !from.Equal(tc.wantFrom) || !to.Equal(tc.wantTo) {
			t.Errorf("%s: got [%v, %v) %v, want [%v, %v) %v", tc.name, from, to, ok, tc.wantFrom, tc.wantTo, tc.ok)
		}
	}
}

// span returns the time a plan's buckets cover: from the start of the
// first to the end of the last; ok is false when it reads nothing.
func span(p ratelimit.UsagePlan) (from, to time.Time, ok bool) {
	hours, minutes := p.HourFrom.Before(p.HourTo), p.MinuteFrom.Before(p.MinuteTo)
	switch {
	case hours && minutes:
		return p.HourFrom, p.MinuteTo, true
	case hours:
		return p.HourFrom, p.HourTo, true
	case minutes:
		return p.MinuteFrom, p.MinuteTo, true
	}
	return time.Time{}, time.Time{}, false
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
