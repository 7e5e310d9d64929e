package proxy

import (
	"sync"
	"time"
)

// stickyTable remembers which backend served a conversation, so prompt
// caching keeps working. Bounded; safe for concurrent use.
type stickyTable struct {
	mu  sync.Mutex // guards m
	m   map[string]stickyEntry
	max int
}

type stickyEntry struct {
	backend string
	expires int64 // unix ns
}

func newStickyTable(max int) *stickyTable {
	return &stickyTable{m: make(map[string]stickyEntry), max: max}
}

// get returns the backend remembered for key, if not expired.
func (t *stickyTable) get(key string, now time.Time) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok || e.expires < now.UnixNano() {
		return "", false
	}
	return e.backend, true
}

// put remembers backend for key until now+ttl.
func (t *stickyTable) put(key, backend string, now time.Time, ttl time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; !ok && len(t.m) >= t.max {
		n := now.UnixNano()
		for k, e := range t.m {
			if e.expires < n {
				delete(t.m, k)
			}
		}
		if len(t.m) >= t.max {
			// Still full of live entries: evict an arbitrary one.
			for k := range t.m {
				delete(t.m, k)
				break
			}
		}
	}
	t.m[key] = stickyEntry{backend: backend, expires: now.Add(ttl).UnixNano()}
}
