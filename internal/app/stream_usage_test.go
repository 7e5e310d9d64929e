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
}
