// Package apiop splits the API's paths into their style, deployment and
// operation, and names the operations (chat/completions, embeddings, ...)
// with a bounded set of labels, for metrics, logs and span names, which
// must never carry a path a client wrote.
package apiop

import "strings"

// Labels are the operations named; the last is Other. Those before
// "models" run a model (a request for one must name it).
var Labels = [...]string{"chat/completions", "completions", "embeddings", "images/generations", "images/edits",
	"audio/transcriptions", "audio/translations", "audio/speech", "responses", "models", Other}

// Other names every operation not in Labels.
const Other = "other"

const models = len(Labels) - 2 // the index of "models"

// Index returns the index in Labels of an operation's path suffix
// ("/chat/completions" or "chat/completions").
func Index(suffix string) int {
	s := strings.TrimPrefix(suffix, "/")
	for i, op := range Labels[:len(Labels)-1] {
		if s == op {
			return i
		}
	}
	return len(Labels) - 1
}

// Label returns the label of an operation's path suffix.
func Label(suffix string) string { return Labels[Index(suffix)] }

// RunsModel reports whether an operation runs a model: not a resource's own
// operations (files, batches, models).
func RunsModel(suffix string) bool { return Index(suffix) < models }

// The API styles a path can take, by the prefix it starts with (Prefixes).
const (
	Deployments = iota // /openai/deployments/{deployment}/...: Azure's per-deployment API
	AzureV1            // /openai/v1/...: Azure's OpenAI-style API
	V1                 // /v1/...: OpenAI's API
	Azure              // /openai/...: the rest of Azure's (models, files, batches...)
)

// Prefixes are the styles' path prefixes, indexed by style, in the order
// Split tries them.
var Prefixes = [...]string{"/openai/deployments/", "/openai/v1/", "/v1/", "/openai/"}

// Split splits a request path into its style, the deployment (Deployments
// only; "" when the path ends after the prefix) and the operation: what
// follows the prefix without its trailing "/" ("/chat/completions" of
// "/v1/chat/completions"; for Deployments, what follows the deployment). ok
// is false for a path of no style.
func Split(p string) (style int, deployment, op string, ok bool) {
	for i, pre := range Prefixes {
		rest, found := strings.CutPrefix(p, pre)
		if !found {
			continue
		}
		if i != Deployments {
			return i, "", p[len(pre)-1:], true
		}
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return i, rest[:j], rest[j:], true
		}
		return i, rest, "", true
	}
	return 0, "", "", false
}
