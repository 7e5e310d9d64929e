package metrics_test

import (
	"sync/atomic"
	"testing"

	"github.com/llmgate/llmgate/internal/metrics"
)

// TestKeyInfoAndStoreUp: llmgate_key_info has one series per configured
// key (by name, with team and owner) and follows the config at every
// scrape; llmgate_store_up follows the store's health.
func TestKeyInfoAndStoreUp(t *testing.T) {
	t.Parallel()
	var keys atomic.Pointer[[]metrics.KeyInfo]
	keys.Store(&[]metrics.KeyInfo{{Name: "search", Team: "search-team", Owner: "alice"}, {Name: "bare"}})
	var up atomic.Bool
	up.Store(true)
	g := metrics.New(metrics.Options{
		Keys:  func() []metrics.KeyInfo { return *keys.Load() },
		Store: func() metrics.StoreState { return metrics.StoreState{Type: "redis", Up: up.Load()} },
	})
	f := scrape(t, g)
	expect(t, f, 1, "llmgate_key_info", "key", "search", "team", "search-team", "owner", "alice")
	expect(t, f, 1, "llmgate_key_info", "key", "bare", "team", "", "owner", "")
	expect(t, f, 1, "llmgate_store_up", "store", "redis", "on_failure", "closed")
	if n := len(f["llmgate_key_info"].GetMetric()); n != 2 {
		t.Errorf("llmgate_key_info series: got %d, want 2", n)
	}

	// A reload: a key gone, one added, a team changed; Redis down.
	keys.Store(&[]metrics.KeyInfo{{Name: "search", Team: "ads", Owner: "alice"}, {Name: "new", Owner: "bob"}})
	up.Store(false)
	f = scrape(t, g)
	expect(t, f, 1, "llmgate_key_info", "key", "search", "team", "ads", "owner", "alice")
	expect(t, f, 1, "llmgate_key_info", "key", "new", "team", "", "owner", "bob")
	if n := len(f["llmgate_key_info"].GetMetric()); n != 2 {
		t.Errorf("llmgate_key_info series after reload: got %d, want 2", n)
	}
	expect(t, f, 0, "llmgate_store_up", "store", "redis", "on_failure", "closed")
}
