package sim

import "sync/atomic"

// Stats are counters of what a Server did since New. Each field is read atomically, but the
// snapshot as a whole is not: counters may move between reads.
type Stats struct {
	// Requests counts requests to the simulated API (admin requests excluded).
	Requests uint64 `json:"requests"`
	// ByStatus counts answers by HTTP status; aborted connections have no status.
	ByStatus map[int]uint64 `json:"by_status"`
	// Aborted counts connections reset, cut or dropped without a complete answer.
	Aborted uint64 `json:"aborted"`
	// Throttled counts 429s from the quota (injected 429s are in Faults["fail_429"]).
	Throttled uint64 `json:"throttled"`
	// FaultsInjected counts injected faults of every kind.
	FaultsInjected uint64 `json:"faults_injected"`
	// Faults counts injected faults by kind, named as in the Faults JSON, plus "auth_break"
	// and "outage" for the requests they refused.
	Faults map[string]uint64 `json:"faults"`
	// TokensAdmitted sums the quota estimates of admitted requests.
	TokensAdmitted uint64 `json:"tokens_admitted"`
	// PromptTokens and CompletionTokens sum the usage reported in answers.
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
	// Streams counts streamed answers started.
	Streams uint64 `json:"streams"`
}

// counters are the atomic counters behind Stats.
type counters struct {
	requests         atomic.Uint64
	aborted          atomic.Uint64
	throttled        atomic.Uint64
	tokensAdmitted   atomic.Uint64
	promptTokens     atomic.Uint64
	completionTokens atomic.Uint64
	streams          atomic.Uint64
	status           [600]atomic.Uint64
	faults           [numFaultKinds]atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Requests:         c.requests.Load(),
		ByStatus:         make(map[int]uint64),
		Aborted:          c.aborted.Load(),
		Throttled:        c.throttled.Load(),
		Faults:           make(map[string]uint64),
		TokensAdmitted:   c.tokensAdmitted.Load(),
		PromptTokens:     c.promptTokens.Load(),
		CompletionTokens: c.completionTokens.Load(),
		Streams:          c.streams.Load(),
	}
	for code := range c.status {
		if n := c.status[code].Load(); n > 0 {
			st.ByStatus[code] = n
		}
	}
	for k := faultNone + 1; k < numFaultKinds; k++ {
		if n := c.faults[k].Load(); n > 0 {
			st.Faults[k.String()] = n
			st.FaultsInjected += n
		}
	}
	return st
}

// usage records the tokens of one answer.
func (c *counters) usage(prompt, completion int64) {
	c.promptTokens.Add(uint64(prompt))
	c.completionTokens.Add(uint64(completion))
}
