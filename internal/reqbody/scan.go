// Package reqbody reads the few top-level fields the gateway needs from a
// JSON request body (stream, model, max_tokens, stream_options) without
// decoding the rest, and without allocating.
package reqbody

import (
	"bytes"
	"errors"
	"strconv"
)

// ErrSyntax reports a body that is not a well-formed JSON object as far as
// the scanner had to read it.
var ErrSyntax = errors.New("reqbody: malformed JSON object")

// maxDepth bounds nesting so hostile input cannot recurse without limit.
const maxDepth = 512

// Field returns the raw JSON value of the top-level key name in the object
// body, e.g. `true`, `"gpt-4o"` (quotes included) or `{"include_usage":true}`.
// found is false when the key is absent. Keys are compared after decoding
// simple escapes only when the raw key contains a backslash.
func Field(body []byte, name string) (raw []byte, found bool, err error) {
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return nil, false, ErrSyntax
	}
	s.ws()
	if s.eat('}') {
		return nil, false, nil
	}
	for {
		s.ws()
		k, esc, ok := s.str()
		if !ok {
			return nil, false, ErrSyntax
		}
		s.ws()
		if !s.eat(':') {
			return nil, false, ErrSyntax
		}
		s.ws()
		start := s.i
		if !s.value(0) {
			return nil, false, ErrSyntax
		}
		if keyEquals(k, esc, name) {
			raw, found = body[start:s.i], true
			// Duplicate keys: the last one wins, as in encoding/json.
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return raw, found, nil
		}
		return nil, false, ErrSyntax
	}
}

// Fields is the part of a request body the gateway reads.
type Fields struct {
	Stream       bool   // "stream": true
	Model        []byte // "model" string value, unquoted (nil if absent or escaped oddly)
	MaxTokens    int64  // max_tokens or max_completion_tokens; -1 if absent
	IncludeUsage bool   // stream_options.include_usage
	HasStreamOpt bool   // stream_options present
	User         []byte // "user" string value, unquoted (nil if absent or escaped)
	CacheKey     []byte // "prompt_cache_key" string value, unquoted (nil if absent or escaped)
}

// plainString returns the contents of a JSON string value without escapes, or nil.
func plainString(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 {
		return v[1 : len(v)-1]
	}
	return nil
}

// Read scans body once and returns the fields the gateway reads.
// Values of the wrong type are ignored, as the upstream will judge them.
func Read(body []byte) (Fields, error) {
	f := Fields{MaxTokens: -1}
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return f, ErrSyntax
	}
	s.ws()
	if s.eat('}') {
		return f, nil
	}
	for {
		s.ws()
		k, esc, ok := s.str()
		if !ok {
			return f, ErrSyntax
		}
		s.ws()
		if !s.eat(':') {
			return f, ErrSyntax
		}
		s.ws()
		start := s.i
		if !s.value(0) {
			return f, ErrSyntax
		}
		v := body[start:s.i]
		switch {
		case keyEquals(k, esc, "stream"):
			f.Stream = string(v) == "true"
		case keyEquals(k, esc, "model"):
			f.Model = plainString(v)
		case keyEquals(k, esc, "user"):
			f.User = plainString(v)
		case keyEquals(k, esc, "prompt_cache_key"):
			f.CacheKey = plainString(v)
		case keyEquals(k, esc, "max_tokens"), keyEquals(k, esc, "max_completion_tokens"):
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n >= 0 {
				f.MaxTokens = n
			}
		case keyEquals(k, esc, "stream_options"):
			if len(v) > 0 && v[0] == '{' {
				f.HasStreamOpt = true
				iu, ok, err := Field(v, "include_usage")
				f.IncludeUsage = err == nil && ok && string(iu) == "true"
			}
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return f, nil
		}
		return f, ErrSyntax
	}
}

func keyEquals(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	u, err := strconv.Unquote(`"` + string(raw) + `"`)
	return err == nil && u == name
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str scans a JSON string and returns its raw contents (without quotes) and
// whether it contained an escape.
func (s *scanner) str() (raw []byte, escaped, ok bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

func (s *scanner) value(depth int) bool {
	if depth > maxDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return true
		}
		for {
			s.ws()
			if _, _, ok := s.str(); !ok {
				return false
			}
			s.ws()
			if !s.eat(':') {
				return false
			}
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			return s.eat('}')
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return true
		}
		for {
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			return s.eat(']')
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		for s.i < len(s.b) && isNumByte(s.b[s.i]) {
			s.i++
		}
		return s.i > start
	default:
		return false
	}
}

func (s *scanner) lit(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

func isNumByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}
