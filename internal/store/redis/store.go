// Package redis implements ratelimit.Store over Redis, so replicas share
// client-key limits, quotas, usage counters and backend throttles.
//
// Every limit decision is one Lua script using the server's clock; there is
// no read-modify-write from Go. Keys carry a hash tag per client key, so a
// Redis Cluster works too. Key layout (Prefix defaults to "llmgate:"):
//
//	<prefix>rl:{<key>}:log      ZSET  sliding log: score = admission time (µs),
//	                                  member = "<nonce>:<tokens>"; PEXPIRE = window
//	<prefix>rl:{<key>}:st       HASH  w (tokens in the log), d/dt (day, tokens),
//	                                  m/mt (month, tokens); expires with the
//	                                  window or at the end of the period
//	<prefix>rl:{<key>}:streams  ZSET  open streams (max_streams): member = a slot's
//	                                  nonce, score = its lease's end (server ms);
//	                                  PEXPIRE = the lease
//	<prefix>usage:{YYYYMMDDHH}  HASH  an hour's usage: "<key>\x1f<model>\x1f<backend>\x1f<metric>"
//	                                  → count, metric prompt|completion|requests;
//	                                  expires UsageRetention (400 days) after the hour
//	<prefix>usage:{YYYYMMDDHH}:MM
//	                            HASH  a minute's usage, same fields; expires
//	                                  MinuteRetention (26 hours) after the minute
//	<prefix>throttles           HASH  backend → cool-down end (Unix ms); past
//	                                  fields are dropped on every write
//	<prefix>circuits            HASH  backend → end of its open circuit's cool-down
//	                                  (Unix ms), as throttles
//	<prefix>backends            channel: "throttle|circuit <until ms> <backend>"
//	                                  for each time the two hashes keep (Watch)
//
// In <key>, '%', '{' and '}' are percent-escaped so the tag is exact. A
// minute's hash shares its hour's tag, so one MULTI writes both (Cluster
// too). A reservation is "<admission time µs>-<nonce>" (16 hex digits).
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/ratelimit"
)

const (
	// DefaultPrefix is the key prefix when Options.Prefix is empty.
	DefaultPrefix = "llmgate:"
	// DefaultTimeout is the per-call timeout when Options.Timeout is zero.
	DefaultTimeout = 250 * time.Millisecond
)

// Options configure New.
type Options struct {
	// URL locates Redis; it may hold a password, so never log it. Forms:
	//   redis://[user:password@]host:port/db, rediss://… (TLS), unix://… — see go-redis ParseURL;
	//   redis+sentinel://[[user]:password@]host1:port,host2:port/mastername[/db] (rediss+sentinel: TLS);
	//   redis+cluster://[[user]:password@]host1:port,host2:port (rediss+cluster: TLS).
	// Sentinel ports default to 26379, cluster ports to 6379. Required.
	URL string
	// Prefix starts every key. Empty: DefaultPrefix. Must not contain '{' or '}'.
	Prefix string
	// Timeout bounds each call to Redis. Zero: DefaultTimeout (250ms).
	Timeout time.Duration
	// Lazy skips the ping in New: the store starts even while Redis is
	// unreachable and connects when it can (the client reconnects by itself).
	Lazy bool
	// Logger receives go-redis's own messages (failed dials and the like)
	// at debug level while the store is open; they never reach stderr as
	// plain text. go-redis has one logger per process, so with several
	// stores open the one opened last gets them. Nil: they are dropped.
	Logger *slog.Logger
}

// Store is a ratelimit.Store over Redis. Safe for concurrent use. It
// reconnects by itself (go-redis) and reloads its scripts after a server
// restart flushed them.
type Store struct {
	client  goredis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger // Options.Logger

	admit       *goredis.Script
	reconcile   *goredis.Script
	throttle    *goredis.Script
	openStream  *goredis.Script
	renewStream *goredis.Script
}

var _ ratelimit.Store = (*Store)(nil)

// New connects to Redis and checks it answers within the timeout; callers
// decide whether an unreachable Redis stops startup (fail-closed) or not.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, errors.New("redis: prefix must not contain '{' or '}'")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("redis: negative timeout %v", o.Timeout)
	}
	tgt, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	useLogger(o.Logger) // before the client exists: it may log at once
	s := &Store{
		client:      tgt.client(),
		prefix:      o.Prefix,
		timeout:     o.Timeout,
		log:         o.Logger,
		admit:       goredis.NewScript(admitLua),
		reconcile:   goredis.NewScript(reconcileLua),
		throttle:    goredis.NewScript(throttleLua),
		openStream:  goredis.NewScript(openStreamLua),
		renewStream: goredis.NewScript(renewStreamLua),
	}
	if o.Lazy {
		return s, nil
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Ping checks that Redis answers within the timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error {
	releaseLogger(s.log)
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}

// limitKeys returns the log and state keys of a client key.
func (s *Store) limitKeys(key string) []string {
	base := s.keyBase(key)
	return []string{base + "log", base + "st"}
}

// keyBase starts the Redis keys of a client key: its limits and its
// streams share the key's hash tag.
func (s *Store) keyBase(key string) string { return s.prefix + "rl:{" + hashTag(key) + "}:" }

// tagEscaper keeps braces out of hash tags, injectively: a '}' in a key
// would end the tag early, and an empty tag ("{}") would split the key's
// Redis keys over cluster slots.
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func hashTag(key string) string {
	if !strings.ContainsAny(key, "%{}") {
		return key
	}
	return tagEscaper.Replace(key)
}
