package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmgate/llmgate/internal/sim"
)

// A stream on the brief's own api-version (2024-02-01) is counted by its
// true usage: the gateway asks for the usage chunk at every api-version
// (the simulator and many resources take it), strips it, and reconciles the
// key's tokens with it.
func TestStreamUsageCountedAtOldAPIVersion(t *testing.T) {
	s := sim.New(sim.Options{})
	up := httptest.NewServer(s)
	t.Cleanup(func() { up.Close(); s.Close() })
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret, tpm: 100000}"))
	client := openai.NewClient(azure.WithEndpoint(g.URL, "2024-02-01"), azure.WithAPIKey("team-secret"),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "gpt-4o", MaxTokens: openai.Int(500),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi [[tokens:7]]")}}
	for i := range 3 {
		st := client.Chat.Completions.NewStreaming(context.Background(), params)
		for st.Next() {
			if c := st.Current(); strings.Contains(c.RawJSON(), `"usage"`) {
				t.Errorf("stream %d: the client got usage it did not ask for: %s", i, c.RawJSON())
			}
		}
		if err := st.Err(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	stats := s.Stats()
	trueTokens := int64(stats.PromptTokens + stats.CompletionTokens)
	var counted int64
	for _, r := range adminUsage(t, g.URL) {
		if r.Key == "team" {
			counted += r.TotalTokens
		}
	}
	if trueTokens == 0 || counted != trueTokens {
		t.Errorf("tokens counted for 3 streams at api-version 2024-02-01 = %d, true usage %d", counted, trueTokens)
	}
}

// An upstream that refuses stream_options at an api-version (as older Azure
// versions may: 400 "Unrecognized request argument supplied:
// stream_options") costs one extra call, once: the stream is asked again at
// once without it, the client never sees the 400, and the next stream there
// goes without it.
func TestStreamUsageRefusedOnceThenNotAsked(t *testing.T) {
	var mu sync.Mutex
	var withOptions, calls int
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req map[string]any
		_ = json.Unmarshal(body, &req)
		mu.Lock()
		calls++
		_, asked := req["stream_options"]
		if asked {
			withOptions++
		}
		mu.Unlock()
		if asked {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret}"))
	var attempts []string
	stream := func() (int, string) {
		req, _ := http.NewRequest("POST", g.URL+"/openai/deployments/gpt-4/chat/completions?api-version=2024-02-01",
			strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
		req.Header.Set("api-key", "team-secret")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		attempts = append(attempts, res.Header.Get("X-Llmgate-Attempts")+" "+res.Header.Get("X-Llmgate-Trail"))
		var events []string
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") {
				events = append(events, sc.Text())
			}
		}
		return res.StatusCode, strings.Join(events, "|")
	}
	for i := range 2 {
		status, events := stream()
		if status != http.StatusOK || !strings.Contains(events, `"content":"hi"`) || !strings.HasSuffix(events, "data: [DONE]") {
			t.Fatalf("stream %d: %d %s, want the stream", i, status, events)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || withOptions != 1 {
		t.Errorf("upstream calls %d (%d with stream_options), want 3 (1): one refusal, learnt once", calls, withOptions)
	}
	// Every upstream call is counted where a client sees its attempts.
	if want := []string{"2 sim:400,sim:200", "1 sim:200"}; strings.Join(attempts, "|") != strings.Join(want, "|") {
		t.Errorf("x-llmgate-attempts and trail: got %q, want %q", attempts, want)
	}
}

// The usage chunk is asked for only where stream_options is the API's (chat
// completions, completions): a Responses API stream is sent as it came (that
// API refuses the field, and the refusal used to switch usage off for every
// later chat stream on the backend), and its usage, named input and output
// tokens, is counted from its last event.
func TestResponsesStreamNotAskedForUsageChunkAndCounted(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+string(b))
		mu.Unlock()
		if strings.Contains(string(b), "stream_options") && strings.HasSuffix(r.URL.Path, "/responses") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"Unknown parameter: 'stream_options.include_usage'.","type":"invalid_request_error","param":"stream_options.include_usage","code":"unknown_parameter"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if strings.HasSuffix(r.URL.Path, "/responses") {
			_, _ = io.WriteString(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n"+
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":29}}}\n\n")
			return
		}
		_, _ = io.WriteString(w, chunk(0, "hi"))
		if strings.Contains(string(b), "include_usage") {
			_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`+"\n\n")
		}
		_, _ = io.WriteString(w, doneEvent)
	}))
	t.Cleanup(up.Close)
	g := serveGateway(t, "keys:\n  - {name: team, key: team-secret}\nadmin: {key: admin-secret}\nbackends:\n  - name: oai\n    type: openai\n    url: "+up.URL+"/v1\n    api_key: k\n")
	// The fake upstream's answers are short and unflushed, so they carry a
	// Content-Length; the chat stream the client gets is shorter (its usage
	// chunk is dropped), and a read to its end fails if that length passed.
	post := func(path, body string) {
		if res, b := bearerCall(t, http.MethodPost, g.URL+path, "team-secret", body); res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
	}
	post("/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`)
	post("/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	mu.Lock()
	got := append([]string(nil), bodies...)
	mu.Unlock()
	if len(got) != 2 || strings.Contains(got[0], "stream_options") || !strings.Contains(got[1], "include_usage") {
		t.Errorf("upstream bodies: got %q; want the responses stream as sent and the chat stream asked for usage", got)
	}
	time.Sleep(100 * time.Millisecond)
	var prompt, completion int64
	for _, r := range adminUsage(t, g.URL) {
		prompt += r.PromptTokens
		completion += r.CompletionTokens
	}
	if prompt != 9+5 || completion != 20+1 {
		t.Errorf("usage counted: prompt %d, completion %d; want 14 and 21 (the responses stream's input/output tokens and the chat stream's)", prompt, completion)
	}
}
