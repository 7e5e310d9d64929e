package reqbody

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want Fields
		err  bool
	}{
		{"empty object", `{}`, Fields{MaxTokens: -1}, false},
		{"stream true", `{"messages":[{"role":"user","content":"hi \"there\" {"}],"stream":true}`, Fields{Stream: true, MaxTokens: -1}, false},
		{"stream false", `{"stream":false}`, Fields{MaxTokens: -1}, false},
		{"stream string ignored", `{"stream":"true"}`, Fields{MaxTokens: -1}, false},
		{"model and max", ` { "model" : "gpt-4o", "max_tokens": 128 } `, Fields{Model: []byte("gpt-4o"), MaxTokens: 128}, false},
		{"max_completion_tokens", `{"max_completion_tokens":7}`, Fields{MaxTokens: 7}, false},
		{"stream options", `{"stream":true,"stream_options":{"include_usage":true}}`, Fields{Stream: true, MaxTokens: -1, HasStreamOpt: true, IncludeUsage: true}, false},
		{"nested stream ignored", `{"x":{"stream":true}}`, Fields{MaxTokens: -1}, false},
		{"escaped key", `{"str\u0065am":true}`, Fields{Stream: true, MaxTokens: -1}, false},
		{"last duplicate wins", `{"stream":true,"stream":false}`, Fields{MaxTokens: -1}, false},
		{"numbers and literals", `{"t":0.5e-3,"n":null,"a":[1,-2,[true,false]],"stream":true}`, Fields{Stream: true, MaxTokens: -1}, false},
		{"n and best_of", `{"n":4,"best_of":6,"max_tokens":10}`, Fields{MaxTokens: 10, N: 4, BestOf: 6}, false},
		{"n not a count", `{"n":0,"best_of":-2}`, Fields{MaxTokens: -1}, false},
		{"not an object", `[1,2]`, Fields{MaxTokens: -1}, true},
		{"truncated", `{"stream":tr`, Fields{MaxTokens: -1}, true},
		{"trailing comma", `{"stream":true,}`, Fields{Stream: true, MaxTokens: -1}, true},
		// PHP's json_encode escapes '/'; other encoders write \u escapes.
		{"model with escaped slash", `{"model":"meta-llama\/Llama-3.1-8B"}`, Fields{Model: []byte("meta-llama/Llama-3.1-8B"), MaxTokens: -1}, false},
		{"model with unicode escape", `{"model":"gpt-\u0034o"}`, Fields{Model: []byte("gpt-4o"), MaxTokens: -1}, false},
		{"model with surrogate pair", `{"model":"m-\ud83d\ude00"}`, Fields{Model: []byte("m-\U0001F600"), MaxTokens: -1}, false},
		{"model with lone surrogate", `{"model":"m-\ud83d-x"}`, Fields{Model: []byte("m-\uFFFD-x"), MaxTokens: -1}, false},
		{"model with bad escape", `{"model":"gpt-\x34"}`, Fields{MaxTokens: -1}, false},
		{"model not a string", `{"model":4}`, Fields{MaxTokens: -1}, false},
		{"escaped user and cache key", `{"user":"a\/b","prompt_cache_key":"k\"1\\"}`, Fields{User: []byte("a/b"), CacheKey: []byte(`k"1\`), MaxTokens: -1}, false},
		{"key with escaped slash", `{"mo\/del":"x","m\u006fdel":"gpt-4o"}`, Fields{Model: []byte("gpt-4o"), MaxTokens: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read([]byte(tt.body))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got.Stream != tt.want.Stream || got.MaxTokens != tt.want.MaxTokens || got.N != tt.want.N || got.BestOf != tt.want.BestOf ||
				got.IncludeUsage != tt.want.IncludeUsage || got.HasStreamOpt != tt.want.HasStreamOpt {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			for _, f := range []struct {
				name      string
				got, want []byte
			}{{"model", got.Model, tt.want.Model}, {"user", got.User, tt.want.User}, {"prompt_cache_key", got.CacheKey, tt.want.CacheKey}} {
				if (f.got == nil) != (f.want == nil) || string(f.got) != string(f.want) {
					t.Errorf("%s: got %q (nil %v), want %q (nil %v)", f.name, f.got, f.got == nil, f.want, f.want == nil)
				}
			}
		})
	}
}

func TestReadDepthBounded(t *testing.T) {
	t.Parallel()
	deep := make([]byte, 0, 4000)
	deep = append(deep, `{"a":`...)
	for range 1000 {
		deep = append(deep, '[')
	}
	if _, err := Read(deep); err == nil {
		t.Error("1000-deep nesting accepted")
	}
}

// FuzzRead checks that the scanner never panics, and that whenever it
// accepts a body that encoding/json also accepts, both read the same stream
// flag and string fields (keys compared exactly, as upstreams do).
func FuzzRead(f *testing.F) {
	for _, s := range []string{`{}`, `{"stream":true}`, `{"model":"m","max_tokens":5,"stream_options":{"include_usage":true}}`,
		`{"a":[{"b":"\"}"}],"stream":false}`, `{`, `[]`, `{"stream":tru}`, "{\"s\\u0074ream\":true}",
		`{"model":"meta-llama\/Llama-3.1-8B"}`, `{"model":"gpt-\u0034"}`, `{"model":"\ud83d\ude00\ud83d"}`,
		`{"user":"\"\\\/\b\f\n\r\t","prompt_cache_key":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(b)
		// The reference is case-sensitive, as the upstreams' parsers are
		// (a struct tag would match "sTreAm" too).
		var ref map[string]any
		if err == nil && json.Valid(b) && json.Unmarshal(b, &ref) == nil {
			want := ref["stream"] == true
			if got.Stream != want {
				t.Fatalf("Read(%q).Stream = %v, encoding/json says %v", b, got.Stream, want)
			}
			if !utf8.Valid(b) {
				return // encoding/json replaces bad UTF-8 that Read passes on
			}
			for _, f := range []struct {
				key string
				got []byte
			}{{"model", got.Model}, {"user", got.User}, {"prompt_cache_key", got.CacheKey}} {
				want, isString := ref[f.key].(string)
				if (f.got != nil) != isString || string(f.got) != want {
					t.Fatalf("Read(%q) %s = %q (nil %v), encoding/json says %q", b, f.key, f.got, f.got == nil, ref[f.key])
				}
			}
		}
	})
}

// TestReadAllocBudget: reading a body whose strings have no escapes (what
// nearly every client sends) allocates nothing; an escaped one, one copy.
func TestReadAllocBudget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		budget float64
	}{
		{"plain", `{"model":"gpt-4o","user":"u-1","prompt_cache_key":"k","messages":[{"role":"user","content":"say \"hi\""}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`, 0},
		{"escaped model", `{"model":"meta-llama\/Llama-3.1-8B","messages":[],"stream":true}`, 1},
	} {
		body := []byte(tc.body)
		allocs := testing.AllocsPerRun(200, func() {
			if f, err := Read(body); err != nil || f.Model == nil {
				t.Fatalf("Read: %+v, %v", f, err)
			}
		})
		if allocs > tc.budget {
			t.Errorf("%s: got %.0f allocations per Read, want at most %.0f", tc.name, allocs, tc.budget)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	body := []byte(`{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about gateways and retries, please."}],"max_tokens":256,"temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if f, err := Read(body); err != nil || !f.Stream {
			b.Fatal(err)
		}
	}
}
