package redis

import (
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
	"github.com/llmgate/llmgate/internal/store/redis/redistest"
)

func TestLuaPeriods(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	raw := rawClient(t, srv)
	first := time.Date(1999, 12, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2101, 3, 1, 0, 0, 0, 0, time.UTC)
	script := luaCommon + `
local out = {}
for day = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local d, de, m, me = periods(day * 86400 + 86399)
  out[#out + 1] = d; out[#out + 1] = de; out[#out + 1] = m; out[#out + 1] = me
end
return out`
	got, err := raw.Eval(t.Context(), script, nil, first.Unix()/86400, last.Unix()/86400).Int64Slice()
	if err != nil {
		t.Fatalf("EVAL: %v", err)
	}
	i := 0
	for day := first; !day.After(last); day = day.AddDate(0, 0, 1) {
		y, m, _ := day.Date()
		want := []int64{day.Unix() / 86400, day.AddDate(0, 0, 1).Unix(), int64(y)*12 + int64(m) - 1,
			time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).Unix()}
		if i+4 > len(got) {
			t.Fatalf("%v: reply too short (%d values)", day, len(got))
		}
		for j, w := range want {
			if got[i+j] != w {
				t.Fatalf("periods(%v)[%d]: got %d, want %d", day, j, got[i+j], w)
			}
		}
		i += 4
	}
}

func TestRunningSumRecount(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), "")
	raw := rawClient(t, srv)
	ctx := t.Context()
	l := ratelimit.Limits{TPM: 100, Window: time.Minute}
	if d, err := s.Admit(ctx, "k", l, 60); err != nil || !d.Allowed {
		t.Fatalf("Admit: got %+v, %v, want allowed", d, err)
	}
	// As if evicted: the log is recounted.
	if err := raw.Del(ctx, "llmgate:rl:{k}:st").Err(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	d, err := s.Admit(ctx, "k", l, 50)
	if err != nil || d.Allowed || d.Reason != ratelimit.ReasonTPM || d.RemainingTokens != 40 {
		t.Fatalf("Admit after losing the sum: got %+v, %v, want refused for tpm with 40 left", d, err)
	}
}
