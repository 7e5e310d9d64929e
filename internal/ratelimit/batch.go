package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Batcher sums usage in memory and writes it to a UsageStore in one batch
// per flush, so the request path never waits on the store. Safe for
// concurrent use.
type Batcher struct {
	store UsageStore

	mu      sync.Mutex // guards pending
	pending map[[3]string]*Usage
}

// NewBatcher returns a Batcher writing to store.
func NewBatcher(store UsageStore) *Batcher {
	return &Batcher{store: store, pending: map[[3]string]*Usage{}}
}

// Add counts one request's usage.
func (b *Batcher) Add(u Usage) {
	k := [3]string{u.Key, u.Model, u.Backend}
	b.mu.Lock()
	p := b.pending[k]
	if p == nil {
		p = &Usage{Key: u.Key, Model: u.Model, Backend: u.Backend}
		b.pending[k] = p
	}
	p.Prompt += u.Prompt
	p.Completion += u.Completion
	p.Requests += u.Requests
	b.mu.Unlock()
}

// Flush writes what was added since the last flush, stamped at. Usage that
// could not be written is kept for the next flush.
func (b *Batcher) Flush(ctx context.Context, at time.Time) error {
	b.mu.Lock()
	batch := b.pending
	b.pending = map[[3]string]*Usage{}
	b.mu.Unlock()
	var first error
	for _, u := range batch {
		if err := b.store.Record(ctx, at, *u); err != nil {
			if first == nil {
				first = err
			}
			b.Add(*u)
		}
	}
	return first
}

// Run flushes every interval until ctx ends, then flushes once more.
func (b *Batcher) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := b.Flush(fctx, time.Now()); err != nil && onErr != nil {
				onErr(err)
			}
			cancel()
			return
		case now := <-t.C:
			fctx, cancel := context.WithTimeout(ctx, interval)
			if err := b.Flush(fctx, now); err != nil && onErr != nil {
				onErr(err)
			}
			cancel()
		}
	}
}
