package usage

import (
	"testing"
)

func TestSnifferJSON(t *testing.T) {
	t.Parallel()
	body := `{"id":"x","choices":[{"message":{"content":"the \"usage\": {\"prompt_tokens\": 99}"}}],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"completion_tokens_details":{"reasoning_tokens":5}}}`
	for step := 1; step <= len(body); step++ {
		var s Sniffer
		for i := 0; i < len(body); i += step {
			_, _ = s.Write([]byte(body[i:min(i+step, len(body))]))
		}
		c, ok := s.Counts()
		if !ok || c != (Counts{12, 30, 42}) {
			t.Fatalf("step %d: got %+v, %v", step, c, ok)
		}
	}
}

func TestSnifferStream(t *testing.T) {
	t.Parallel()
	stream := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n" +
		"data: [DONE]\n\n"
	var s Sniffer
	_, _ = s.Write([]byte(stream))
	if c, ok := s.Counts(); !ok || c != (Counts{7, 3, 10}) {
		t.Fatalf("got %+v, %v", c, ok)
	}
	var none Sniffer
	_, _ = none.Write([]byte(`{"usage":null}`))
	if _, ok := none.Counts(); ok {
		t.Error("null usage reported")
	}
}

// Usage named input and output (the Responses API, gpt-4o-transcribe,
// gpt-image-1) counts as prompt and completion.
func TestSnifferInputOutputTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		want Counts
	}{
		{`{"text":"hello","usage":{"type":"tokens","input_tokens":7,"input_token_details":{"text_tokens":2,"audio_tokens":5},"output_tokens":4,"total_tokens":11}}`, Counts{7, 4, 11}},
		{`{"created":1,"data":[{"b64_json":"..."}],"usage":{"input_tokens":50,"output_tokens":4160,"input_tokens_details":{"text_tokens":50}}}`, Counts{50, 4160, 4210}},
		{"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":29}}}\n\n", Counts{9, 20, 29}},
	} {
		var s Sniffer
		_, _ = s.Write([]byte(tc.body))
		if c, ok := s.Counts(); !ok || c != tc.want {
			t.Errorf("%.40s...: got %+v %v, want %+v", tc.body, c, ok, tc.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	t.Parallel()
	if got := Estimate(400, 50, 1); got != 150 {
		t.Errorf("Estimate(400, 50, 1) = %d, want 150", got)
	}
	// Each choice (n, best_of) may use max_tokens, as Azure counts it.
	if got := Estimate(400, 50, 4); got != 300 {
		t.Errorf("Estimate(400, 50, 4) = %d, want 300", got)
	}
	if got := Estimate(400, 1<<62, 1<<40); got <= 0 || got > 1<<50 {
		t.Errorf("Estimate(400, 2^62, 2^40) = %d, want a large positive bound (no overflow)", got)
	}
	if got := Estimate(0, -1, 0); got != DefaultCompletion {
		t.Errorf("Estimate(0, -1, 0) = %d", got)
	}
}

func FuzzSniffer(f *testing.F) {
	f.Add([]byte(`{"usage":{"prompt_tokens":1,"completion_tokens":2}}`), uint8(3))
	f.Add([]byte(`"usage"`), uint8(1))
	f.Add([]byte(`{"usage":{"a":{"b":"}"}},"usage":null}`), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		s := int(step%32) + 1
		var sn Sniffer
		for i := 0; i < len(in); i += s {
			_, _ = sn.Write(in[i:min(i+s, len(in))])
		}
		var whole Sniffer
		_, _ = whole.Write(in)
		a, oka := sn.Counts()
		b, okb := whole.Counts()
		if a != b || oka != okb {
			t.Fatalf("split writes disagree: %+v %v vs %+v %v", a, oka, b, okb)
		}
	})
}

func BenchmarkSniffer(b *testing.B) {
	chunk := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}],"usage":null}` + "\n\n")
	var s Sniffer
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		_, _ = s.Write(chunk)
	}
}

// TestSnifferAllocBudget: usage extraction allocates nothing per chunk.
func TestSnifferAllocBudget(t *testing.T) {
	chunk := []byte(`data: {"choices":[{"delta":{"content":"x"}}],"usage":null}` + "\n\n")
	last := []byte(`data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}` + "\n\n")
	var s Sniffer
	allocs := testing.AllocsPerRun(100, func() {
		for range 10 {
			_, _ = s.Write(chunk)
		}
		_, _ = s.Write(last)
	})
	if allocs != 0 {
		t.Errorf("sniffing 11 chunks allocated %.1f times, budget 0", allocs)
	}
}
