package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Faults says which faults the simulator injects and how often. Rates are fractions of requests
// from 0 to 1; a zero rate injects nothing. The zero value injects no fault. See the package
// documentation for what each fault does on the wire. JSON uses the names in the tags and
// durations as strings such as "2s"; decoding also takes a number of seconds (2, 0.5, "2").
type Faults struct {
	// Fail500 is the fraction of requests answered 500 InternalServerError.
	Fail500 float64 `json:"fail_500"`
	// Fail503 is the fraction of requests answered 503 ServiceUnavailable.
	Fail503 float64 `json:"fail_503"`
	// Fail429 is the fraction of requests answered 429 regardless of the quota.
	Fail429 float64 `json:"fail_429"`
	// RetryAfter429 is the delay that injected 429s advertise in retry-after (rounded up to
	// whole seconds) and retry-after-ms. If zero, 1 s. If negative, the headers are omitted.
	RetryAfter429 time.Duration `json:"retry_after_429"`
	// Reset is the fraction of requests whose connection is reset before any answer.
	Reset float64 `json:"reset"`
	// Hang is the fraction of requests that get no answer until the client leaves or the
	// Server is closed.
	Hang float64 `json:"hang"`
	// SlowHeaders is the fraction of requests whose answer starts only after SlowHeadersDelay.
	// It is drawn independently of the other faults.
	SlowHeaders float64 `json:"slow_headers"`
	// SlowHeadersDelay is the delay of SlowHeaders. If zero, 2 s.
	SlowHeadersDelay time.Duration `json:"slow_headers_delay"`
	// StreamCut is the fraction of admitted requests whose answer is aborted halfway.
	StreamCut float64 `json:"stream_cut"`
	// ErrorEvent is the fraction of admitted streaming requests answered 200 with an error as
	// the only event.
	ErrorEvent float64 `json:"error_event"`
	// AuthBreak, if true, answers 401 to every request, whatever its key.
	AuthBreak bool `json:"auth_break"`
	// OutageReset, if true, resets connections during an outage instead of answering 503.
	OutageReset bool `json:"outage_reset"`
}

const (
	defaultRetryAfter429    = time.Second
	defaultSlowHeadersDelay = 2 * time.Second
)

// faultKind is one kind of injected fault; the values index Stats counters and their names are
// the Faults JSON names.
type faultKind uint8

const (
	faultNone faultKind = iota
	faultReset
	faultHang
	fault500
	fault503
	fault429
	faultStreamCut
	faultErrorEvent
	faultSlowHeaders
	faultAuthBreak
	faultOutage
	numFaultKinds
)

var faultNames = [numFaultKinds]string{
	faultNone:        "none",
	faultReset:       "reset",
	faultHang:        "hang",
	fault500:         "fail_500",
	fault503:         "fail_503",
	fault429:         "fail_429",
	faultStreamCut:   "stream_cut",
	faultErrorEvent:  "error_event",
	faultSlowHeaders: "slow_headers",
	faultAuthBreak:   "auth_break",
	faultOutage:      "outage",
}

func (k faultKind) String() string {
	if k < numFaultKinds {
		return faultNames[k]
	}
	return fmt.Sprintf("fault(%d)", uint8(k))
}

// exclusive returns the rates of the mutually exclusive faults in draw order.
func (f *Faults) exclusive() [7]struct {
	kind faultKind
	rate float64
} {
	return [7]struct {
		kind faultKind
		rate float64
	}{
		{faultReset, f.Reset},
		{faultHang, f.Hang},
		{fault500, f.Fail500},
		{fault503, f.Fail503},
		{fault429, f.Fail429},
		{faultStreamCut, f.StreamCut},
		{faultErrorEvent, f.ErrorEvent},
	}
}

// pick maps two uniform numbers in [0, 1) to the exclusive fault and whether headers are slow.
func (f *Faults) pick(u, v float64) (faultKind, bool) {
	kind := faultNone
	acc := 0.0
	for _, e := range f.exclusive() {
		acc += e.rate
		if u < acc {
			kind = e.kind
			break
		}
	}
	return kind, v < f.SlowHeaders
}

func (f *Faults) any() bool {
	return f.Reset > 0 || f.Hang > 0 || f.Fail500 > 0 || f.Fail503 > 0 || f.Fail429 > 0 ||
		f.StreamCut > 0 || f.ErrorEvent > 0 || f.SlowHeaders > 0
}

// cleared returns f with every fault off. The delays, which say how two
// faults look rather than whether they happen, keep their values.
func (f Faults) cleared() Faults {
	return Faults{RetryAfter429: f.RetryAfter429, SlowHeadersDelay: f.SlowHeadersDelay}
}

func (f *Faults) retryAfter429() time.Duration {
	if f.RetryAfter429 == 0 {
		return defaultRetryAfter429
	}
	return f.RetryAfter429
}

func (f *Faults) slowHeadersDelay() time.Duration {
	if f.SlowHeadersDelay <= 0 {
		return defaultSlowHeadersDelay
	}
	return f.SlowHeadersDelay
}

// Validate reports every rate outside 0..1, a sum of exclusive rates above 1 and a negative
// SlowHeadersDelay, joined.
func (f Faults) Validate() error {
	var errs []error
	sum := 0.0
	check := func(name string, r float64) {
		if math.IsNaN(r) || r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("%s: rate %v outside 0..1", name, r))
		}
	}
	for _, e := range f.exclusive() {
		check(e.kind.String(), e.rate)
		sum += e.rate
	}
	check(faultSlowHeaders.String(), f.SlowHeaders)
	if sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("exclusive fault rates sum to %v, more than 1", sum))
	}
	if f.SlowHeadersDelay < 0 {
		errs = append(errs, fmt.Errorf("slow_headers_delay: negative %v", f.SlowHeadersDelay))
	}
	return errors.Join(errs...)
}

// faultsJSON is the wire form of Faults: durations as strings.
type faultsJSON struct {
	Fail500          float64      `json:"fail_500"`
	Fail503          float64      `json:"fail_503"`
	Fail429          float64      `json:"fail_429"`
	RetryAfter429    jsonDuration `json:"retry_after_429"`
	Reset            float64      `json:"reset"`
	Hang             float64      `json:"hang"`
	SlowHeaders      float64      `json:"slow_headers"`
	SlowHeadersDelay jsonDuration `json:"slow_headers_delay"`
	StreamCut        float64      `json:"stream_cut"`
	ErrorEvent       float64      `json:"error_event"`
	AuthBreak        bool         `json:"auth_break"`
	OutageReset      bool         `json:"outage_reset"`
}

func (f Faults) wire() faultsJSON {
	return faultsJSON{
		Fail500: f.Fail500, Fail503: f.Fail503, Fail429: f.Fail429,
		RetryAfter429: jsonDuration(f.RetryAfter429),
		Reset:         f.Reset, Hang: f.Hang,
		SlowHeaders: f.SlowHeaders, SlowHeadersDelay: jsonDuration(f.SlowHeadersDelay),
		StreamCut: f.StreamCut, ErrorEvent: f.ErrorEvent,
		AuthBreak: f.AuthBreak, OutageReset: f.OutageReset,
	}
}

// MarshalJSON encodes durations as strings such as "1.5s".
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(f.wire())
}

// UnmarshalJSON decodes what MarshalJSON encodes; fields absent from data keep their values
// in f, as encoding/json does for structs, and unknown fields are an error.
func (f *Faults) UnmarshalJSON(data []byte) error {
	w := f.wire()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*f = Faults{
		Fail500: w.Fail500, Fail503: w.Fail503, Fail429: w.Fail429,
		RetryAfter429: time.Duration(w.RetryAfter429),
		Reset:         w.Reset, Hang: w.Hang,
		SlowHeaders: w.SlowHeaders, SlowHeadersDelay: time.Duration(w.SlowHeadersDelay),
		StreamCut: w.StreamCut, ErrorEvent: w.ErrorEvent,
		AuthBreak: w.AuthBreak, OutageReset: w.OutageReset,
	}
	return nil
}

// jsonDuration is a time.Duration that JSON encodes as a string ("250ms") and decodes from a
// string holding a duration or a number of seconds ("250ms", "0.25") or from a JSON number of
// seconds (0.25).
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(data []byte) error {
	var v time.Duration
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		var err error
		if v, err = parseSpan(s); err != nil {
			return err
		}
	} else {
		var f float64
		if err := json.Unmarshal(data, &f); err != nil || string(data) == "null" {
			return fmt.Errorf("duration must be a number of seconds such as 2 or a string such as \"2s\", got %s", data)
		}
		var err error
		if v, err = secondsSpan(f); err != nil {
			return err
		}
	}
	*d = jsonDuration(v)
	return nil
}

// splitmix64 finalizer: a good 64-bit mixer, used for fault draws, ids and content.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// mix combines values into one well-mixed 64-bit number.
func mix(a, b, c uint64) uint64 {
	return mix64(mix64(mix64(a)^b) ^ c)
}

// unit maps x to a float64 in [0, 1).
func unit(x uint64) float64 {
	return float64(x>>11) / (1 << 53)
}

// draw decides the faults of the n-th request from the seed alone.
func drawFaults(f *Faults, seed, n uint64) (faultKind, bool) {
	return f.pick(unit(mix(seed, n, 1)), unit(mix(seed, n, 2)))
}
