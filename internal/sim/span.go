package sim

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// maxSpanSeconds is the longest span, in seconds, that a time.Duration holds.
const maxSpanSeconds = math.MaxInt64 / int64(time.Second)

// parseSpan parses a time span given to the admin endpoint or a flag: a Go duration such as
// "10s" or "250ms", or a plain decimal number of seconds such as "10", "0.25" or "-1".
func parseSpan(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if !isDecimal(s) {
		return 0, fmt.Errorf("%q is neither a number of seconds (10, 0.5) nor a duration (10s, 500ms)", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return secondsSpan(f)
}

// secondsSpan converts f seconds to a duration, rounded to the nanosecond.
func secondsSpan(f float64) (time.Duration, error) {
	if math.IsNaN(f) || math.Abs(f) > float64(maxSpanSeconds) {
		return 0, fmt.Errorf("%v seconds is out of range (at most %d)", f, maxSpanSeconds)
	}
	return time.Duration(math.Round(f * float64(time.Second))), nil
}

// isDecimal reports whether s is an optionally signed decimal number without exponent: digits
// with an optional fraction, or a fraction alone (".5").
func isDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// spanFlag is a flag.Value holding a time span parsed by parseSpan.
type spanFlag time.Duration

func (d *spanFlag) String() string { return time.Duration(*d).String() }

func (d *spanFlag) Set(s string) error {
	v, err := parseSpan(s)
	if err != nil {
		return err
	}
	*d = spanFlag(v)
	return nil
}
