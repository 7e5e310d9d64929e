package metrics

import (
	"maps"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// labels bounds the model and backend label values. Reads are lock-free
// (an immutable set behind an atomic pointer); writers copy the set under
// mu. Safe for concurrent use.
type labels struct {
	set atomic.Pointer[labelSet]
	mu  sync.Mutex // serialises writers of set
}

// labelSet is immutable once published.
type labelSet struct {
	// models holds every name configured so far and the names admitted
	// from traffic; dynamic counts the latter (at most maxDynamicModels).
	models  map[string]bool
	dynamic int
	// backends holds every backend name configured so far; nil until the
	// first Configure, when any name passes.
	backends map[string]bool
}

func (l *labels) init() { l.set.Store(&labelSet{models: map[string]bool{}}) }

// configure adds the config's model and backend names. Names configured
// before stay known, so in-flight requests on an older config keep their
// labels; the sets grow only by what operators configure.
func (l *labels) configure(models, backends []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.set.Load()
	next := &labelSet{models: maps.Clone(old.models), dynamic: old.dynamic, backends: maps.Clone(old.backends)}
	if next.backends == nil {
		next.backends = map[string]bool{}
	}
	for _, m := range models {
		if validLabel(m) {
			next.models[m] = true
		}
	}
	for _, b := range backends {
		if validLabel(b) {
			next.backends[b] = true
		}
	}
	l.set.Store(next)
}

// model returns the label for a model name: the name if known, None if
// empty, else Other.
func (l *labels) model(name string) string {
	if name == "" {
		return None
	}
	if l.set.Load().models[name] {
		return name
	}
	return Other
}

// admitModel makes a name that reached a backend known, while fewer than
// maxDynamicModels were admitted. Only names a backend was asked for are
// admitted, so names a client merely tried never become labels.
func (l *labels) admitModel(name string) {
	s := l.set.Load()
	if name == "" || s.models[name] || s.dynamic >= maxDynamicModels || !validLabel(name) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s = l.set.Load()
	if s.models[name] || s.dynamic >= maxDynamicModels {
		return
	}
	next := &labelSet{models: maps.Clone(s.models), dynamic: s.dynamic + 1, backends: s.backends}
	next.models[name] = true
	l.set.Store(next)
}

// backend returns the label for a backend name.
func (l *labels) backend(name string) string {
	if name == "" {
		return None
	}
	s := l.set.Load()
	if s.backends == nil || s.backends[name] {
		if !validLabel(name) {
			return Other
		}
		return name
	}
	return Other
}

// validLabel accepts short, printable UTF-8 values.
func validLabel(s string) bool {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
