package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// KeyInfo is one configured client key, for llmgate_key_info.
type KeyInfo struct {
	Name        string // the key's name, never the key
	Team, Owner string // "" when not set
}

// StoreState is the state store's health, for llmgate_store_up.
type StoreState struct {
	Type string // "memory" or "redis"
	Up   bool   // the store answered its last call
	// FailOpen is the policy while it does not: true serves with limits
	// enforced per instance, false refuses limited requests.
	FailOpen bool
}

// infoCollector reads the config in use and the store's health at scrape
// time, so a reload or an outage shows at the next scrape with no work on
// the request path.
type infoCollector struct {
	keys  func() []KeyInfo  // nil: no llmgate_key_info
	store func() StoreState // nil: no llmgate_store_up
}

var (
	descKeyInfo = prometheus.NewDesc("llmgate_key_info",
		"1 for each configured client key, by key name, with its team and owner (empty when unset); join on key to sum usage by team.",
		[]string{"key", "team", "owner"}, nil)
	descStoreUp = prometheus.NewDesc("llmgate_store_up",
		"1 while the state store answers, 0 while it is unreachable (then store.on_failure applies: open or closed).",
		[]string{"store", "on_failure"}, nil)
)

// Describe implements prometheus.Collector.
func (c *infoCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.keys != nil {
		ch <- descKeyInfo
	}
	if c.store != nil {
		ch <- descStoreUp
	}
}

// Collect implements prometheus.Collector. Keys whose name or metadata
// cannot be a label value are left out; a repeated name is sent once.
func (c *infoCollector) Collect(ch chan<- prometheus.Metric) {
	if c.keys != nil {
		seen := map[string]bool{}
		for _, k := range c.keys() {
			if seen[k.Name] || !validLabel(k.Name) || !optionalLabel(k.Team) || !optionalLabel(k.Owner) {
				continue
			}
			seen[k.Name] = true
			ch <- prometheus.MustNewConstMetric(descKeyInfo, prometheus.GaugeValue, 1, k.Name, k.Team, k.Owner)
		}
	}
	if c.store != nil {
		s := c.store()
		policy := "closed"
		if s.FailOpen {
			policy = "open"
		}
		ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, b2f(s.Up), orNone(s.Type), policy)
	}
}

func optionalLabel(s string) bool { return s == "" || validLabel(s) }
