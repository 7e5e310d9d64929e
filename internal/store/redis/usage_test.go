package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

func TestUsageNames(t *testing.T) {
	t.Parallel()
	s := &Store{prefix: DefaultPrefix}
	err := s.Record(t.Context(), time.Now(), ratelimit.Usage{Key: "a\x1fb", Requests: 1})
	if !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("Record with \\x1f in the key: got %v, want ErrInvalid", err)
	}
}
