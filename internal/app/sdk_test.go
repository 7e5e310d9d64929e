package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// sdkClient returns the official client pointed at the gateway, configured
// as for Azure OpenAI. The gateway is served over TLS, as the SDK sends an
// Azure api-key only over HTTPS; the SDK's own retries are off so every
// retry seen is the gateway's.
func sdkClient(t testing.TB, gw *httptest.Server, key string) openai.Client {
	t.Helper()
	return openai.NewClient(
		azure.WithEndpoint(gw.URL, "2024-02-01"),
		azure.WithAPIKey(key),
		option.WithHTTPClient(gw.Client()),
		option.WithMaxRetries(0),
	)
}

// startTLSGateway is startGateway served over TLS.
func startTLSGateway(t testing.TB, bs []backend, extra string) *httptest.Server {
	t.Helper()
	a, _ := newApp(t, parseConfig(t, bs, extra))
	srv := httptest.NewTLSServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv
}

var sdkParams = openai.ChatCompletionNewParams{
	Model:    "gpt-4o",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
}

func TestOpenAIGoSDKChatCompletion(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	// The first backend throttles: the SDK must not notice the failover.
	a := rec.upstream(t, "a", respond(http.StatusTooManyRequests, `{"error":{"code":"429","message":"busy"}}`))
	b := rec.upstream(t, "b", respond(http.StatusOK, completionJSON, "X-Ratelimit-Remaining-Tokens", "999"))
	gw := startTLSGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
	client := sdkClient(t, gw, clientKey)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var raw *http.Response
	got, err := client.Chat.Completions.New(ctx, sdkParams, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatalf("chat completion: %v", err)
	}
	if len(got.Choices) != 1 || got.Choices[0].Message.Content != "Hello from upstream" {
		t.Errorf("completion: got %+v", got.Choices)
	}
	if got.Usage.TotalTokens != 8 {
		t.Errorf("usage: got %d total tokens, want 8", got.Usage.TotalTokens)
	}
	if raw.Header.Get("X-Llmgate-Backend") != "b" || raw.Header.Get("X-Llmgate-Attempts") != "2" || raw.Header.Get("X-Ratelimit-Remaining-Tokens") != "999" {
		t.Errorf("headers: got %v", raw.Header)
	}
	calls := rec.Calls()
	if len(calls) != 2 {
		t.Fatalf("upstream calls: got %d, want 2", len(calls))
	}
	const wantURI = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01"
	for _, c := range calls {
		if c.URI != wantURI {
			t.Errorf("%s: request target: got %q, want %q", c.Backend, c.URI, wantURI)
		}
		if c.Header.Get("Api-Key") != backendKey(c.Backend) || c.Header.Get("Authorization") != "" {
			t.Errorf("%s: credentials: got api-key %q authorization %q", c.Backend, c.Header.Get("Api-Key"), c.Header.Get("Authorization"))
		}
		var body map[string]any
		if err := json.Unmarshal(c.Body, &body); err != nil || body["model"] != "gpt-4o" {
			t.Errorf("%s: body: got %s (%v)", c.Backend, c.Body, err)
		}
	}
	if string(calls[0].Body) != string(calls[1].Body) {
		t.Errorf("bodies differ between attempts: %s vs %s", calls[0].Body, calls[1].Body)
	}
}

func TestOpenAIGoSDKStreamingChatCompletion(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	first := `data: {"id":"","object":"","created":0,"model":"","choices":[],"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}` + "\n\n"
	a := rec.upstream(t, "a", respond(http.StatusInternalServerError, `{"error":{"code":"500"}}`))
	b := rec.upstream(t, "b", sse(first, chunk(0, "Hello "), chunk(1, "world "), chunk(2, "again "), doneEvent))
	gw := startTLSGateway(t, []backend{weighted("a", a.URL, 1), weighted("b", b.URL, 0)}, fastRetry)
	client := sdkClient(t, gw, clientKey)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := client.Chat.Completions.NewStreaming(ctx, sdkParams)
	defer stream.Close()
	var text strings.Builder
	chunks := 0
	for stream.Next() {
		chunks++
		for _, c := range stream.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if chunks != 4 || text.String() != "Hello 0world 1again 2" {
		t.Errorf("stream: got %d chunks %q, want 4 and %q", chunks, text.String(), "Hello 0world 1again 2")
	}
	if got := strings.Join(rec.Backends(), ","); got != "a,b" {
		t.Errorf("attempts: got %s, want a,b", got)
	}
	for _, c := range rec.Calls() {
		var body map[string]any
		if err := json.Unmarshal(c.Body, &body); err != nil || body["stream"] != true {
			t.Errorf("%s: body: got %s, want stream: true", c.Backend, c.Body)
		}
	}
}

func TestOpenAIGoSDKSeesMidStreamBreakAsError(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", func(w http.ResponseWriter, _ *http.Request, _ call) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(chunk(0, "Hello ")))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	gw := startTLSGateway(t, []backend{be("a", up.URL)}, fastRetry)
	client := sdkClient(t, gw, clientKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := client.Chat.Completions.NewStreaming(ctx, sdkParams)
	defer stream.Close()
	n := 0
	for stream.Next() {
		n++
	}
	var se *ssestream.StreamError
	if !errors.As(stream.Err(), &se) {
		t.Fatalf("stream error: got %v, want *ssestream.StreamError from the gateway's error event", stream.Err())
	}
	if n != 1 {
		t.Errorf("chunks before the error: got %d, want 1", n)
	}
}

func TestOpenAIGoSDKWrongKeyGets401(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	gw := startTLSGateway(t, []backend{be("a", up.URL)}, fastRetry)
	client := sdkClient(t, gw, "ck-not-a-key")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Chat.Completions.New(ctx, sdkParams)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "401" {
		t.Fatalf("error: got %v, want a 401 API error with code 401", err)
	}
	// The SDKs report an error's x-request-id (Node's APIError.requestID):
	// the gateway's own answers carry its request id there.
	if id := apiErr.Response.Header.Get("X-Request-Id"); id == "" || id != apiErr.Response.Header.Get("X-Llmgate-Request-Id") {
		t.Errorf("x-request-id %q, want the gateway's request id %q", id, apiErr.Response.Header.Get("X-Llmgate-Request-Id"))
	}
	if n := len(rec.Calls()); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
}
