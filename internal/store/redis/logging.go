package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// go-redis writes its own messages (a failed dial, a pool or sentinel
// event) through one logger for the whole process, by default as plain
// text on stderr, once per failed dial. That would break the gateway's
// JSON-lines log and repeat all through an outage, which the gateway
// reports once itself. So the first New replaces it, once per process
// (redis.SetLogger is global), by clientLog: it forwards those messages at
// debug level to the Options.Logger of the store opened last and still
// open, and drops them when there is none.
//
// This is the package's only mutable state, forced by go-redis's global.
var (
	installLog sync.Once
	clientLog  forwarder
)

// forwarder implements go-redis's logging interface over slog. Safe for
// concurrent use.
type forwarder struct {
	to atomic.Pointer[slog.Logger] // nil: drop
}

// Printf logs one go-redis message at debug level.
func (f *forwarder) Printf(ctx context.Context, format string, args ...any) {
	l := f.to.Load()
	if l == nil {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	l.LogAttrs(ctx, slog.LevelDebug, "redis client", slog.String("detail", fmt.Sprintf(format, args...)))
}

// useLogger routes go-redis's messages to l (nil: dropped) from now on.
func useLogger(l *slog.Logger) {
	installLog.Do(func() { goredis.SetLogger(&clientLog) })
	clientLog.to.Store(l)
}

// releaseLogger stops routing go-redis's messages to l, if they still go there.
func releaseLogger(l *slog.Logger) {
	if l != nil {
		clientLog.to.CompareAndSwap(l, nil)
	}
}
