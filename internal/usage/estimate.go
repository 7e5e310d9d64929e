// Package usage estimates the tokens of a request before it is sent and
// reads the true counts from responses.
package usage

// DefaultCompletion is the completion allowance counted for a request that
// sets no max_tokens (Azure counts a request's max_tokens at admission).
const DefaultCompletion = 256

// maxChoices and maxCompletion bound what an estimate counts (the APIs
// allow up to 128 choices; no limit is near 2^40 tokens), so that no sum
// or product overflows.
const (
	maxChoices    = 128
	maxCompletion = 1 << 40
)

// Estimate returns the tokens a request is counted for at admission: its
// prompt, approximated as one token per 4 bytes of the JSON body (an
// over-estimate for JSON, which is the safe side for a limit), plus its
// max_tokens (or DefaultCompletion when the request sets none) for each of
// the choices it asks for (n, or best_of), as Azure counts it.
func Estimate(bodyLen int, maxTokens, choices int64) int64 {
	prompt := int64(bodyLen+3) / 4
	if maxTokens < 0 {
		maxTokens = DefaultCompletion
	}
	return prompt + min(maxTokens, maxCompletion)*min(max(choices, 1), maxChoices)
}
