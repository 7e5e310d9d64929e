package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/internal/upstream"
)

// stateCollector reads every backend's live state at scrape time, so the
// gauges are never stale and the hot path does no work for them.
type stateCollector struct {
	reg *upstream.Registry
	now func() time.Time
}

var (
	descAvailable = prometheus.NewDesc("llmgate_backend_available",
		"1 if the backend can take a request now (not cooling down, circuit not open, below its in-flight cap), else 0.",
		[]string{"backend"}, nil)
	descThrottledUntil = prometheus.NewDesc("llmgate_backend_throttled_until_seconds",
		"End of the backend's current cool-down (Retry-After) as Unix seconds; 0 when not throttled.",
		[]string{"backend"}, nil)
	descCircuitOpen = prometheus.NewDesc("llmgate_backend_circuit_open",
		"1 while the backend's circuit breaker is open or half-open (probing), else 0.",
		[]string{"backend"}, nil)
	descInflight = prometheus.NewDesc("llmgate_backend_inflight",
		"Upstream attempts in flight to the backend.",
		[]string{"backend"}, nil)
	descRemainingTokens = prometheus.NewDesc("llmgate_backend_remaining_tokens",
		"Tokens the backend last reported left (x-ratelimit-remaining-tokens, less what was sent since); -1 when unknown or stale.",
		[]string{"backend"}, nil)
	descRemainingRequests = prometheus.NewDesc("llmgate_backend_remaining_requests",
		"Requests the backend last reported left (x-ratelimit-remaining-requests); -1 when unknown or stale.",
		[]string{"backend"}, nil)
	descLatency = prometheus.NewDesc("llmgate_backend_latency_seconds",
		"Moving average of the backend's time to response headers over successful attempts; 0 before the first.",
		[]string{"backend"}, nil)
)

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAvailable, descThrottledUntil, descCircuitOpen, descInflight,
		descRemainingTokens, descRemainingRequests, descLatency} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, s := range c.reg.All() {
		name := s.Name
		ch <- prometheus.MustNewConstMetric(descAvailable, prometheus.GaugeValue, b2f(s.Available(now)), name)
		until := 0.0
		if t := s.ThrottledUntil(); t.After(now) && !s.AuthBroken() { // a refused credential is no throttle
			until = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descThrottledUntil, prometheus.GaugeValue, until, name)
		ch <- prometheus.MustNewConstMetric(descCircuitOpen, prometheus.GaugeValue, b2f(s.Circuit(now) != upstream.Closed), name)
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(s.InFlight()), name)
		tok, req := s.Remaining(now)
		ch <- prometheus.MustNewConstMetric(descRemainingTokens, prometheus.GaugeValue, float64(tok), name)
		ch <- prometheus.MustNewConstMetric(descRemainingRequests, prometheus.GaugeValue, float64(req), name)
		ch <- prometheus.MustNewConstMetric(descLatency, prometheus.GaugeValue, s.Latency().Seconds(), name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
