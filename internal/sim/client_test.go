package sim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

// clientModes are the two ways the official client reaches the simulator.
func clientModes(url string) map[string][]option.RequestOption {
	return map[string][]option.RequestOption{
		"azure": {
			azure.WithEndpoint(url, testVersion),
			azure.WithAPIKey(testKey),
			azure.WithUnsafeAllowHTTP(),
			option.WithMaxRetries(0),
		},
		"openai": {
			option.WithBaseURL(url + "/v1/"),
			option.WithAPIKey(testKey),
			option.WithMaxRetries(0),
		},
		"azure-v1": {
			option.WithBaseURL(url + "/openai/v1/"),
			option.WithAPIKey(testKey),
			option.WithMaxRetries(0),
		},
	}
}

func TestOfficialClient(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Key: testKey, Seed: 7, TPM: 1_000_000, RPM: 10_000}))
	for name, opts := range clientModes(ts.URL) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			client := openai.NewClient(opts...)
			params := openai.ChatCompletionNewParams{
				Model:     "gpt-4o-deploy",
				Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something about gateways.")},
				MaxTokens: openai.Int(20),
			}
			resp, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" {
				t.Fatalf("choices: got %+v", resp.Choices)
			}
			if !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Model != "gpt-4o-deploy" || resp.Created == 0 {
				t.Errorf("id, model, created: got %q %q %d", resp.ID, resp.Model, resp.Created)
			}
			u := resp.Usage
			// 3 + 4 + ⌈29/4⌉ = 15
			if u.PromptTokens != 15 || u.CompletionTokens < 1 || u.CompletionTokens > 20 ||
				u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Errorf("usage: got %+v, want prompt 15 and completion in 1..20", u)
			}
			words := int64(len(strings.Fields(resp.Choices[0].Message.Content)))
			if words != u.CompletionTokens {
				t.Errorf("content has %d words, want completion_tokens %d", words, u.CompletionTokens)
			}
			if fr := resp.Choices[0].FinishReason; fr != "stop" && fr != "length" {
				t.Errorf("finish_reason: got %q", fr)
			}

			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := client.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			chunks, usageChunks := 0, 0
			for stream.Next() {
				chunk := stream.Current()
				if !acc.AddChunk(chunk) {
					t.Fatalf("accumulator refused chunk %+v", chunk)
				}
				chunks++
				if chunk.JSON.Usage.Valid() && chunk.Usage.TotalTokens > 0 {
					usageChunks++
					if len(chunk.Choices) != 0 {
						t.Errorf("usage chunk has %d choices, want 0", len(chunk.Choices))
					}
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if usageChunks != 1 {
				t.Errorf("usage chunks: got %d, want 1", usageChunks)
			}
			if got, want := acc.Choices[0].Message.Content, resp.Choices[0].Message.Content; got != want {
				t.Errorf("streamed content: got %q, want the non-streamed %q", got, want)
			}
			if a := acc.Usage; a.PromptTokens != u.PromptTokens || a.CompletionTokens != u.CompletionTokens ||
				a.TotalTokens != u.TotalTokens {
				t.Errorf("streamed usage: got %+v, want %+v", a, u)
			}
			if chunks < int(u.CompletionTokens)+1 {
				t.Errorf("chunks: got %d, want one per token plus usage", chunks)
			}

			comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
				Model:  "instruct",
				Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			})
			if err != nil {
				t.Fatalf("completions: %v", err)
			}
			if comp.Object != "text_completion" || len(comp.Choices) != 1 || comp.Usage.CompletionTokens > 16 {
				t.Errorf("completion: got %+v", comp)
			}
			cstream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
				Model:     "instruct",
				Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
				MaxTokens: openai.Int(5),
			})
			var text strings.Builder
			for cstream.Next() {
				for _, c := range cstream.Current().Choices {
					text.WriteString(c.Text)
				}
			}
			if err := cstream.Err(); err != nil {
				t.Fatalf("completions stream: %v", err)
			}
			if n := len(strings.Fields(text.String())); n != 5 {
				t.Errorf("streamed completion %q has %d words, want 5", text.String(), n)
			}

			emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model:      "embed",
				Input:      openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one", "two three"}},
				Dimensions: openai.Int(8),
			})
			if err != nil {
				t.Fatalf("embeddings: %v", err)
			}
			if len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 8 || emb.Data[1].Index != 1 {
				t.Fatalf("embeddings: got %+v", emb.Data)
			}
			if emb.Usage.PromptTokens != 1+3 || emb.Usage.TotalTokens != emb.Usage.PromptTokens {
				t.Errorf("embeddings usage: got %+v, want 4", emb.Usage)
			}
		})
	}
}

func TestOfficialClientSeesAPIErrors(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Key: testKey}))
	client := openai.NewClient(azure.WithEndpoint(ts.URL, testVersion), azure.WithAPIKey("wrong"),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model:    "dep",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error: got %T %v, want *openai.Error", err, err)
	}
	if apiErr.StatusCode != 401 || apiErr.Code != "401" {
		t.Errorf("error: got status %d code %q, want 401", apiErr.StatusCode, apiErr.Code)
	}
}
