// Package reqbody reads the few top-level fields the gateway needs from a
// JSON request body (stream, model, max_tokens, stream_options) without
// decoding the rest, and without allocating (but for a string field written
// with escapes, which is decoded into a copy).
package reqbody

import (
	"bytes"
	"errors"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrSyntax reports a body that is not a well-formed JSON object as far as
// the scanner had to read it.
var ErrSyntax = errors.New("reqbody: malformed JSON object")

// maxDepth bounds nesting so hostile input cannot recurse without limit.
const maxDepth = 512

// Field returns the raw JSON value of the top-level key name in the object
// body, e.g. `true`, `"gpt-4o"` (quotes included) or `{"include_usage":true}`.
// found is false when the key is absent. Keys are compared after decoding
// their escapes, when they have any.
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

// Fields is the part of a request body the gateway reads. The string
// fields are decoded values (escapes such as \/ or \u0034 resolved), nil if
// the key is absent or its value is not a valid JSON string; without
// escapes they point into the body.
type Fields struct {
	Stream       bool   // "stream": true
	Model        []byte // "model" string value
	MaxTokens    int64  // max_tokens or max_completion_tokens; -1 if absent
	N            int64  // "n", choices asked for; 0 if absent
	BestOf       int64  // "best_of" (completions), choices made; 0 if absent
	IncludeUsage bool   // stream_options.include_usage
	HasStreamOpt bool   // stream_options present
	User         []byte // "user" string value
	CacheKey     []byte // "prompt_cache_key" string value
}

// stringValue returns the decoded contents of the JSON string value v, or
// nil if v is not a string or has an invalid escape. A string without
// escapes (the usual case) is returned in place, without allocating.
func stringValue(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' {
		return nil
	}
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	u, ok := unescape(raw)
	if !ok {
		return nil
	}
	return u
}

// unescape decodes the contents of a JSON string (what is between its
// quotes) into a new slice, as encoding/json does: \uXXXX surrogate pairs
// make one character, a lone surrogate becomes U+FFFD. ok is false for an
// escape JSON does not have.
func unescape(raw []byte) (out []byte, ok bool) {
	out = make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(raw) {
			return nil, false
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(raw[i+1:])
			if !ok {
				return nil, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if len(raw) > i+2 && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2, ok = hex4(raw[i+3:])
				}
				if d := utf16.DecodeRune(r, r2); ok && d != unicode.ReplacementChar {
					r = d
					i += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return out, true
}

// hex4 reads the four hex digits of a \u escape at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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
			f.Model = stringValue(v)
		case keyEquals(k, esc, "user"):
			f.User = stringValue(v)
		case keyEquals(k, esc, "prompt_cache_key"):
			f.CacheKey = stringValue(v)
		case keyEquals(k, esc, "max_tokens"), keyEquals(k, esc, "max_completion_tokens"):
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n >= 0 {
				f.MaxTokens = n
			}
		case keyEquals(k, esc, "n"):
			f.N = count(v)
		case keyEquals(k, esc, "best_of"):
			f.BestOf = count(v)
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

// Choices is how many completions the request makes: the larger of n and
// best_of, at least 1. Each may use up to max_tokens.
func (f *Fields) Choices() int64 { return max(f.N, f.BestOf, 1) }

// count reads a positive whole number (a JSON integer); 0 otherwise.
func count(v []byte) int64 {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

func keyEquals(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	u, ok := unescape(raw)
	return ok && string(u) == name
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
