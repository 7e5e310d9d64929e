package proxy

import (
	"time"

	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/balance"
	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/retry"
	"github.com/llmgate/llmgate/internal/upstream"
)

// Mode is the retry timing.
type Mode uint8

const (
	// Smart (the default) goes to a fresh, available backend at once and waits
	// the backoff formula only when it must call a backend it already tried.
	Smart Mode = iota
	// APIM waits the backoff formula before every retry, as API Management does.
	APIM
)

// Backend is one upstream as the handler sees it.
type Backend struct {
	Name     string
	Provider *provider.Azure
	State    *upstream.State
}

// Config is an immutable snapshot of everything a request needs. The handler
// swaps whole snapshots on reload; a request keeps the one it started with.
type Config struct {
	Keys     *auth.Set
	Backends []Backend
	// Cands parallels Backends for selection.
	Cands []balance.Candidate
	// Retries is the number of retries after the first attempt.
	Retries int
	Backoff retry.Backoff
	Mode    Mode
	// MaxBody bounds the request body; larger gets 413.
	MaxBody int64
	// StreamIdle bounds the gap between reads of an upstream body. Zero: none.
	StreamIdle time.Duration
	// MaxWait bounds a wait for a throttled backend to recover; beyond it the
	// client gets 429 with the true Retry-After at once. Zero: never wait.
	MaxWait time.Duration
}
