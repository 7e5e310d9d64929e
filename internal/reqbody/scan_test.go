package reqbody

import (
	"encoding/json"
	"testing"
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
		{"not an object", `[1,2]`, Fields{MaxTokens: -1}, true},
		{"truncated", `{"stream":tr`, Fields{MaxTokens: -1}, true},
		{"trailing comma", `{"stream":true,}`, Fields{Stream: true, MaxTokens: -1}, true},
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
			if got.Stream != tt.want.Stream || string(got.Model) != string(tt.want.Model) || got.MaxTokens != tt.want.MaxTokens ||
				got.IncludeUsage != tt.want.IncludeUsage || got.HasStreamOpt != tt.want.HasStreamOpt {
				t.Errorf("got %+v, want %+v", got, tt.want)
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
// flag (keys compared exactly, as upstreams do).
func FuzzRead(f *testing.F) {
	for _, s := range []string{`{}`, `{"stream":true}`, `{"model":"m","max_tokens":5,"stream_options":{"include_usage":true}}`,
		`{"a":[{"b":"\"}"}],"stream":false}`, `{`, `[]`, `{"stream":tru}`, "{\"s\\u0074ream\":true}"} {
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
		}
	})
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
