// Package apiop names the API's operations (chat/completions, embeddings,
// ...) with a bounded set of labels, for metrics, logs and span names,
// which must never carry a path a client wrote.
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
