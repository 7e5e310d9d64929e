package sim

import (
	"strings"
	"unicode/utf8"
)

// The token approximation and generation constants; see the package documentation.
const (
	charsPerToken    = 4
	messageOverhead  = 4  // tokens per chat message
	replyPriming     = 3  // tokens per chat request
	imagePartTokens  = 85 // tokens per image content part
	defaultMaxTokens = 16 // estimate when max_tokens is absent; legacy completions' cap
	minNaturalTokens = 8
	maxNaturalTokens = 48
	maxForcedTokens  = 4096
)

const (
	markerFilter           = "[[content_filter]]"
	markerFilterCompletion = "[[content_filter:completion]]"
	markerTokens           = "[[tokens:"
)

// textTokens approximates the tokens of s: ⌈code points / 4⌉.
func textTokens(s string) int64 {
	n := int64(utf8.RuneCountInString(s))
	return (n + charsPerToken - 1) / charsPerToken
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashString folds s into the FNV-1a hash h.
func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// hashUint folds v into the FNV-1a hash h.
func hashUint(h uint64, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

// prompt accumulates what the simulator needs from the request's text: the token estimate, a
// hash that seeds the answer, and the magic markers.
type prompt struct {
	tokens           int64
	hash             uint64
	filter           bool  // [[content_filter]]
	filterCompletion bool  // [[content_filter:completion]]
	forced           int64 // [[tokens:N]], or -1
}

func newPrompt() prompt { return prompt{hash: fnvOffset, forced: -1} }

// addText counts s as its own text and folds it into the hash.
func (p *prompt) addText(s string) {
	p.tokens += textTokens(s)
	p.hash = hashString(p.hash, s)
	p.hash = hashUint(p.hash, uint64(len(s)))
	p.scan(s)
}

// addTokenIDs counts an array of token ids.
func (p *prompt) addTokenIDs(ids []int64) {
	p.tokens += int64(len(ids))
	for _, id := range ids {
		p.hash = hashUint(p.hash, uint64(id))
	}
	p.hash = hashUint(p.hash, uint64(len(ids)))
}

// scan looks for the magic markers in s.
func (p *prompt) scan(s string) {
	for {
		i := strings.Index(s, "[[")
		if i < 0 {
			return
		}
		s = s[i:]
		switch {
		case strings.HasPrefix(s, markerFilter):
			p.filter = true
		case strings.HasPrefix(s, markerFilterCompletion):
			p.filterCompletion = true
		case strings.HasPrefix(s, markerTokens):
			if n, ok := parseMarkerNumber(s[len(markerTokens):]); ok {
				p.forced = n
			}
		}
		s = s[2:]
	}
}

// parseMarkerNumber parses "N]]" with 0 <= N <= maxForcedTokens.
func parseMarkerNumber(s string) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(s) && i < 5 && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int64(s[i]-'0')
	}
	if i == 0 || !strings.HasPrefix(s[i:], "]]") || n > maxForcedTokens {
		return 0, false
	}
	return n, true
}

// vocabulary holds the words of generated content; every entry is plain ASCII that needs no
// JSON escaping. spaced and final hold the same words with a leading space and a final period.
var (
	vocabulary = [64]string{
		"the", "gateway", "routes", "each", "request", "to", "a", "healthy", "deployment",
		"and", "tokens", "flow", "back", "as", "they", "are", "generated", "while", "quota",
		"limits", "keep", "traffic", "fair", "across", "regions", "so", "that", "clients",
		"see", "steady", "latency", "when", "one", "backend", "slows", "down", "another",
		"takes", "over", "without", "losing", "context", "or", "state", "for", "long",
		"streams", "model", "answers", "simulated", "calmly", "with", "retries", "bounded",
		"by", "time", "budgets", "in", "practice", "this", "works", "well", "enough", "today",
	}
	spacedVocabulary = func() (v [64]string) {
		for i, w := range vocabulary {
			v[i] = " " + w
		}
		return v
	}()
	finalVocabulary = func() (v [64]string) {
		for i, w := range vocabulary {
			v[i] = w + "."
		}
		return v
	}()
	spacedFinalVocabulary = func() (v [64]string) {
		for i, w := range vocabulary {
			v[i] = " " + w + "."
		}
		return v
	}()
)

// rng is a splitmix64 generator: tiny, allocation free and deterministic.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// choice generates the content of one choice, token by token.
type choice struct {
	r      rng
	start  uint64 // initial rng state, to replay
	n      int64  // tokens to generate
	finish string // finish_reason
	i      int64  // tokens generated so far
	fixed  string // a tool call's arguments or JSON content, sent in pieces; "": words
	off    int    // fixed: the bytes sent so far
}

// newChoice plans choice k of a request: its length from the marker or the PRNG, cut by
// limit (0 = no limit) and by the completion content-filter marker.
func newChoice(seed int64, p *prompt, k int, limit int64) choice {
	c := choice{r: rng{s: mix(uint64(seed), p.hash, uint64(k))}}
	natural := p.forced
	if natural < 0 {
		natural = minNaturalTokens + int64(c.r.next()%(maxNaturalTokens-minNaturalTokens+1))
	}
	c.n, c.finish = natural, "stop"
	if limit > 0 && natural > limit {
		c.n, c.finish = limit, "length"
	}
	if p.filterCompletion {
		c.n, c.finish = c.n/2, "content_filter"
	}
	c.start = c.r.s
	return c
}

// done reports whether every token was generated.
func (c *choice) done() bool { return c.i >= c.n }

// last reports whether the next token is the last one.
func (c *choice) last() bool { return c.i == c.n-1 }

// next returns the next piece of text; pieces after the first start with a space and a
// stopped choice ends with a period.
func (c *choice) next() string {
	if c.fixed != "" {
		at := c.off
		c.off = pieceEnd(c.fixed, at)
		c.i++
		return c.fixed[at:c.off]
	}
	w := c.r.next() % uint64(len(vocabulary))
	first, final := c.i == 0, c.i == c.n-1 && c.finish == "stop"
	c.i++
	switch {
	case first && final:
		return finalVocabulary[w]
	case first:
		return vocabulary[w]
	case final:
		return spacedFinalVocabulary[w]
	default:
		return spacedVocabulary[w]
	}
}

// text generates the whole content of c from its start.
func (c *choice) text() string {
	if c.fixed != "" {
		end := 0
		for range c.n {
			end = pieceEnd(c.fixed, end)
		}
		return c.fixed[:end]
	}
	c.r.s, c.i = c.start, 0
	var b strings.Builder
	b.Grow(int(c.n) * 9)
	for !c.done() {
		b.WriteString(c.next())
	}
	c.r.s, c.i = c.start, 0
	return b.String()
}
