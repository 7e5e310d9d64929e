package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Batcher sums usage in memory and writes it to a UsageStore in one batch
// per flush, so the request path never waits on the store. Usage is
// stamped with the minute it was added in, not the time of the flush, so a
// late flush never moves it into a later bucket. Safe for concurrent use.
type Batcher struct {
	store UsageStore
	now   func() time.Time

	mu      sync.Mutex // guards pending
	pending map[batchKey]*Usage
}

// batchKey is what one pending sum counts: a (key, model, backend) in one minute.
type batchKey struct {
	names  [3]string
	minute int64 // Unix seconds
}

// NewBatcher returns a Batcher writing to store.
func NewBatcher(store UsageStore) *Batcher {
	return &Batcher{store: store, now: time.Now, pending: map[batchKey]*Usage{}}
}

// Add counts one request's usage, now.
func (b *Batcher) Add(u Usage) {
	b.add(b.now().Truncate(time.Minute).Unix(), u)
}

func (b *Batcher) add(minute int64, u Usage) {
	k := batchKey{[3]string{u.Key, u.Model, u.Backend}, minute}
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

// Flush writes what was added since the last flush, each sum stamped with
// the minute it was added in. Usage that could not be written is kept for
// the next flush.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	batch := b.pending
	if len(batch) == 0 {
		b.mu.Unlock()
		return nil
	}
	b.pending = map[batchKey]*Usage{}
	b.mu.Unlock()
	var first error
	for k, u := range batch {
		if err := b.store.Record(ctx, time.Unix(k.minute, 0), *u); err != nil {
			if first == nil {
				first = err
			}
			b.add(k.minute, *u)
		}
	}
	return first
}

// Run flushes every interval, each flush bounded by timeout, until ctx
// ends, then flushes once more (for up to timeout). onErr, if not nil,
// receives the errors of failed flushes.
func (b *Batcher) Run(ctx context.Context, interval, timeout time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			if err := b.Flush(fctx); err != nil && onErr != nil {
				onErr(err)
			}
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, timeout)
			if err := b.Flush(fctx); err != nil && onErr != nil {
				onErr(err)
			}
			cancel()
		}
	}
}
