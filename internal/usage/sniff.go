package usage

import (
	"bytes"
)

// Counts are the tokens a response reported.
type Counts struct {
	Prompt, Completion, Total int64
}

// Sniffer finds the last non-null "usage" object in a byte stream written
// to it piece by piece (a JSON body or an SSE stream), without buffering
// the stream and without allocating. The zero value is ready to use.
type Sniffer struct {
	carry   [8]byte // the last bytes seen, to find a key split across writes
	ncarry  int
	capt    [384]byte // the usage value being captured
	ncapt   int
	depth   int
	inStr   bool
	esc     bool
	capture bool
	found   bool
	last    Counts
}

var usageKey = []byte(`"usage"`)

// Write implements io.Writer; it never fails.
func (s *Sniffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.capture {
			p = s.feed(p)
			continue
		}
		// Look for the key across the carried tail and p.
		i := indexAcross(s.carry[:s.ncarry], p, usageKey)
		if i < 0 {
			s.keep(p)
			return n, nil
		}
		// i is the index in p just past the key.
		p = p[i:]
		s.ncarry = 0
		s.capture, s.ncapt, s.depth, s.inStr, s.esc = true, 0, 0, false, false
	}
	return n, nil
}

// indexAcross returns the index in p just past the first match of key in
// carry+p, or -1.
func indexAcross(carry, p, key []byte) int {
	if len(carry) > 0 {
		var tmp [16]byte
		m := copy(tmp[:], carry)
		m += copy(tmp[m:], p[:min(len(p), len(key)-1)])
		if j := bytes.Index(tmp[:m], key); j >= 0 && j+len(key) > len(carry) {
			return j + len(key) - len(carry)
		}
	}
	if j := bytes.Index(p, key); j >= 0 {
		return j + len(key)
	}
	return -1
}

func (s *Sniffer) keep(p []byte) {
	k := len(usageKey) - 1
	if len(p) >= k {
		s.ncarry = copy(s.carry[:], p[len(p)-k:])
		return
	}
	// Keep the last k bytes of carry+p, in place.
	drop := max(s.ncarry+len(p)-k, 0)
	n := copy(s.carry[:], s.carry[drop:s.ncarry])
	s.ncarry = n + copy(s.carry[n:], p)
}

// feed captures the value after a "usage" key: a null, or an object up to
// its closing brace.
func (s *Sniffer) feed(p []byte) []byte {
	for i, c := range p {
		if s.ncapt == 0 && s.depth == 0 {
			switch c {
			case ' ', '\t', '\r', '\n', ':':
				continue
			case '{':
			default:
				// null or something else: not a usage object.
				s.capture = false
				return p[i:]
			}
		}
		if s.ncapt < len(s.capt) {
			s.capt[s.ncapt] = c
			s.ncapt++
		} else {
			s.capture = false // too long to be a usage object
			return p[i:]
		}
		switch {
		case s.inStr:
			if s.esc {
				s.esc = false
			} else if c == '\\' {
				s.esc = true
			} else if c == '"' {
				s.inStr = false
			}
		case c == '"':
			s.inStr = true
		case c == '{':
			s.depth++
		case c == '}':
			s.depth--
			if s.depth == 0 {
				s.capture = false
				s.parse(s.capt[:s.ncapt])
				return p[i+1:]
			}
		}
	}
	return nil
}

// parse reads the top-level token counts of a usage object.
func (s *Sniffer) parse(obj []byte) {
	var c Counts
	ok := false
	for _, f := range [...]struct {
		key string
		dst *int64
	}{{`"prompt_tokens"`, &c.Prompt}, {`"completion_tokens"`, &c.Completion}, {`"total_tokens"`, &c.Total},
		// The Responses API, audio transcription and image generation
		// name them input and output.
		{`"input_tokens"`, &c.Prompt}, {`"output_tokens"`, &c.Completion}} {
		if *f.dst != 0 {
			continue // named both ways: the first name counts
		}
		if v, found := intAfter(obj, f.key); found {
			*f.dst = v
			ok = true
		}
	}
	if ok {
		if c.Total == 0 {
			c.Total = c.Prompt + c.Completion
		}
		s.last, s.found = c, true
	}
}

// intAfter returns the integer value of the first occurrence of key at
// depth 1 of obj (nested objects such as *_tokens_details are skipped).
func intAfter(obj []byte, key string) (int64, bool) {
	depth := 0
	inStr, esc := false, false
	for i := 0; i < len(obj); i++ {
		c := obj[i]
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
			continue
		case c == '{':
			depth++
			continue
		case c == '}':
			depth--
			continue
		case c == '"':
			if depth == 1 && bytes.HasPrefix(obj[i:], []byte(key)) {
				j := i + len(key)
				for j < len(obj) && (obj[j] == ' ' || obj[j] == ':' || obj[j] == '\t' || obj[j] == '\n' || obj[j] == '\r') {
					j++
				}
				k := j
				for k < len(obj) && obj[k] >= '0' && obj[k] <= '9' {
					k++
				}
				if k == j || k-j > 18 {
					return 0, false
				}
				var v int64
				for _, d := range obj[j:k] {
					v = v*10 + int64(d-'0')
				}
				return v, true
			}
			inStr = true
		}
	}
	return 0, false
}

// Counts returns the last usage object seen, if any.
func (s *Sniffer) Counts() (Counts, bool) { return s.last, s.found }
