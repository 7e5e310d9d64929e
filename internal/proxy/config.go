package proxy

import (
	"time"

	"github.com/llmgate/llmgate/internal/auth"
	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/ratelimit"
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

// Policy is how a backend is drawn within a priority group.
type Policy uint8

const (
	// Weighted draws at random by weight (the seed's behaviour).
	Weighted Policy = iota
	// LeastInflight picks the backend with the fewest requests in flight per unit of weight.
	LeastInflight
	// Latency draws by weight divided by recent latency: faster backends take more.
	Latency
	// Headroom draws by weight times the fraction of capacity left.
	Headroom
)

// Backend is one upstream as the handler sees it.
type Backend struct {
	Name     string
	Provider provider.Adapter
	State    *upstream.State
	// Weight is the share within the priority group; Priority the group (1 first).
	Weight   float64
	Priority int
}

// Member is a backend serving a route, under its own deployment name.
type Member struct {
	Backend int    // index into Config.Backends
	Name    string // the backend's deployment name for this route
}

// Route is the set of backends that serve one deployment or model name.
type Route struct {
	Name    string
	Members []Member
}

// Config is an immutable snapshot of everything a request needs. The handler
// swaps whole snapshots on reload; a request keeps the one it started with.
type Config struct {
	Keys     *auth.Set
	Backends []Backend
	// Routes maps the names clients use to the backends serving them.
	Routes map[string]*Route
	// Wildcard holds the backends that serve every name unchanged; it
	// serves a name absent from Routes. Nil when every backend lists its names.
	Wildcard *Route
	// All holds every backend, for operations that name no model.
	All *Route
	// Aliases map a client's name to the name routes know.
	Aliases map[string]string
	// Models lists the names clients may ask for (routes and aliases), for GET /v1/models.
	Models []string

	// Retries is the number of retries after the first attempt.
	Retries int
	Backoff retry.Backoff
	Mode    Mode
	Policy  Policy
	// Steering steers away from backends about to run out of capacity.
	Steering bool
	// MaxBody bounds the request body; larger gets 413.
	MaxBody int64
	// MaxHeader bounds the request's headers (names and values); larger gets 431.
	MaxHeader int
	// MaxStreams bounds each key's concurrent streams; a key absent is unbounded.
	MaxStreams map[auth.KeyID]int64
	// StreamIdle bounds the gap between reads of an upstream body. Zero: none.
	StreamIdle time.Duration
	// MaxWait bounds a wait for a throttled backend to recover; beyond it the
	// client gets 429 with the true Retry-After at once. Zero: never wait.
	MaxWait time.Duration
	// Total bounds a whole request. Zero: no bound but the client's.
	Total time.Duration
	// BudgetRatio and BudgetMinPerSecond shape the retry budget.
	BudgetRatio, BudgetMinPerSecond float64
	// StickyKey is "", "prompt_cache_key", "user" or "header:NAME".
	StickyKey string
	StickyTTL time.Duration
	// Limits are the client keys' limits; a key absent here is unlimited.
	Limits map[auth.KeyID]ratelimit.Limits
	// StoreTimeout bounds one state-store call. StoreFailOpen keeps serving
	// (with limits enforced by this instance alone) while the store is unreachable.
	StoreTimeout  time.Duration
	StoreFailOpen bool
}
