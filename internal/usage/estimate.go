// Package usage estimates the tokens of a request before it is sent and
// reads the true counts from responses.
package usage

// DefaultCompletion is the completion allowance counted for a request that
// sets no max_tokens (Azure counts a request's max_tokens at admission).
const DefaultCompletion = 256

// Estimate returns the tokens a request is counted for at admission: its
// prompt, approximated as one token per 4 bytes of the JSON body (an
// over-estimate for JSON, which is the safe side for a limit), plus its
// max_tokens (or DefaultCompletion when the request sets none).
func Estimate(bodyLen int, maxTokens int64) int64 {
	prompt := int64(bodyLen+3) / 4
	if maxTokens < 0 {
		maxTokens = DefaultCompletion
	}
	return prompt + maxTokens
}
