package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
)

type usageJSON struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// severityResult and detectedResult are Azure's content filter verdicts.
type severityResult struct {
	Filtered bool   `json:"filtered"`
	Severity string `json:"severity"`
}

type detectedResult struct {
	Filtered bool `json:"filtered"`
	Detected bool `json:"detected"`
}

type filterResults struct {
	Hate      severityResult  `json:"hate"`
	Jailbreak *detectedResult `json:"jailbreak,omitempty"`
	SelfHarm  severityResult  `json:"self_harm"`
	Sexual    severityResult  `json:"sexual"`
	Violence  severityResult  `json:"violence"`
}

type promptFilterResult struct {
	PromptIndex          int            `json:"prompt_index"`
	ContentFilterResults *filterResults `json:"content_filter_results"`
}

// Azure's verdicts on safe content; never modified.
var (
	safe          = severityResult{Filtered: false, Severity: "safe"}
	safeChoice    = &filterResults{Hate: safe, SelfHarm: safe, Sexual: safe, Violence: safe}
	safePrompt    = &filterResults{Hate: safe, Jailbreak: &detectedResult{}, SelfHarm: safe, Sexual: safe, Violence: safe}
	promptResults = []promptFilterResult{{PromptIndex: 0, ContentFilterResults: safePrompt}}
)

type chatMessageJSON struct {
	Role         string            `json:"role"`
	Content      *string           `json:"content"` // null with a tool or function call
	ToolCalls    []toolCallJSON    `json:"tool_calls,omitempty"`
	FunctionCall *functionCallJSON `json:"function_call,omitempty"`
}

type chatChoiceJSON struct {
	Index                int             `json:"index"`
	Message              chatMessageJSON `json:"message"`
	Logprobs             *struct{}       `json:"logprobs"`
	FinishReason         string          `json:"finish_reason"`
	ContentFilterResults *filterResults  `json:"content_filter_results,omitempty"`
}

type textChoiceJSON struct {
	Text                 string         `json:"text"`
	Index                int            `json:"index"`
	Logprobs             *struct{}      `json:"logprobs"`
	FinishReason         string         `json:"finish_reason"`
	ContentFilterResults *filterResults `json:"content_filter_results,omitempty"`
}

// completionJSON is a chat completion (C = chatChoiceJSON) or a text completion
// (C = textChoiceJSON).
type completionJSON[C any] struct {
	ID                  string               `json:"id"`
	Object              string               `json:"object"`
	Created             int64                `json:"created"`
	Model               string               `json:"model"`
	PromptFilterResults []promptFilterResult `json:"prompt_filter_results,omitempty"`
	Choices             []C                  `json:"choices"`
	Usage               usageJSON            `json:"usage"`
}

// complete answers a non-streamed chat or completions request.
func (s *Server) complete(x *exchange) {
	if c := x.call; c.op == opChat {
		completeAs(s, x, "chatcmpl-", "chat.completion",
			func(k int, text, finish string, filter *filterResults) chatChoiceJSON {
				msg := chatMessageJSON{Role: "assistant", Content: &text}
				switch f := c.fixed; {
				case f != nil && f.legacy:
					msg.Content, msg.FunctionCall = nil, &functionCallJSON{Name: f.tool, Arguments: text}
				case f != nil && f.tool != "":
					msg.Content = nil
					msg.ToolCalls = []toolCallJSON{{ID: c.callID(s.seed, k), Type: "function", Function: functionCallJSON{Name: f.tool, Arguments: text}}}
				}
				return chatChoiceJSON{Index: k, Message: msg, FinishReason: finish, ContentFilterResults: filter}
			})
		return
	}
	completeAs(s, x, "cmpl-", "text_completion",
		func(k int, text, finish string, filter *filterResults) textChoiceJSON {
			return textChoiceJSON{Text: text, Index: k, FinishReason: finish, ContentFilterResults: filter}
		})
}

// completeAs builds and sends a completion whose choices newChoiceJSON makes.
func completeAs[C any](s *Server, x *exchange, idPrefix, object string,
	newChoiceJSON func(k int, text, finish string, filter *filterResults) C) {
	c := x.call
	resp := completionJSON[C]{
		ID:      s.objectID(idPrefix, x.id),
		Object:  object,
		Created: s.now().Unix(),
		Model:   c.model,
		Choices: make([]C, c.choices()),
	}
	var filter *filterResults
	if x.route.azure {
		resp.PromptFilterResults = promptResults
		filter = safeChoice
	}
	var completion, longest int64
	limit := c.limit()
	for k := range resp.Choices {
		ch := c.plan(s.seed, k, limit)
		resp.Choices[k] = newChoiceJSON(k, ch.text(), ch.finish, filter)
		completion, longest = completion+ch.n, max(longest, ch.n)
	}
	resp.Usage = usageJSON{c.prompt.tokens, completion, c.prompt.tokens + completion}
	body, err := json.Marshal(&resp)
	if err != nil {
		s.writeError(x.w, errInternal)
		return
	}
	s.stats.usage(c.prompt.tokens, completion)
	s.answer(x, "application/json", body, longest)
}

type embeddingJSON struct {
	Object    string         `json:"object"`
	Index     int            `json:"index"`
	Embedding embeddingValue `json:"embedding"`
}

// embeddingValue is a vector encoded as a JSON array of numbers or as base64 of little-endian
// float32.
type embeddingValue struct {
	v      []float32
	base64 bool
}

func (e embeddingValue) MarshalJSON() ([]byte, error) {
	if !e.base64 {
		return json.Marshal(e.v)
	}
	raw := make([]byte, 4*len(e.v))
	for i, f := range e.v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(raw))
}

type embeddingsJSON struct {
	Object string          `json:"object"`
	Data   []embeddingJSON `json:"data"`
	Model  string          `json:"model"`
	Usage  struct {
		PromptTokens int64 `json:"prompt_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	} `json:"usage"`
}

// embed answers an embeddings request.
func (s *Server) embed(x *exchange) {
	c := x.call
	resp := embeddingsJSON{Object: "list", Model: c.model, Data: make([]embeddingJSON, len(c.inputs))}
	values := make([]float32, len(c.inputs)*c.dimensions)
	for i, h := range c.inputs {
		v := values[i*c.dimensions : (i+1)*c.dimensions]
		fillVector(v, mix(uint64(s.seed), h, 5))
		resp.Data[i] = embeddingJSON{Object: "embedding", Index: i, Embedding: embeddingValue{v, c.base64}}
	}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = c.prompt.tokens, c.prompt.tokens
	body, err := json.Marshal(&resp)
	if err != nil {
		s.writeError(x.w, errInternal)
		return
	}
	s.stats.usage(c.prompt.tokens, 0)
	s.answer(x, "application/json", body, 0)
}

// fillVector fills v with a deterministic unit vector.
func fillVector(v []float32, seed uint64) {
	r := rng{s: seed}
	var sum float64
	for i := range v {
		f := unit(r.next())*2 - 1
		v[i] = float32(f)
		sum += f * f
	}
	if sum == 0 {
		v[0], sum = 1, 1
	}
	norm := 1 / math.Sqrt(sum)
	for i := range v {
		v[i] = float32(float64(v[i]) * norm)
	}
}

type imageJSON struct {
	URL     string `json:"url,omitempty"`
	B64JSON string `json:"b64_json,omitempty"`
}

type imagesJSON struct {
	Created int64       `json:"created"`
	Data    []imageJSON `json:"data"`
}

// onePixelPNG is a 1×1 transparent PNG, base64 encoded.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

// generateImages answers an images request.
func (s *Server) generateImages(x *exchange) {
	c := x.call
	resp := imagesJSON{Created: s.now().Unix(), Data: make([]imageJSON, c.images)}
	for i := range resp.Data {
		if c.imagesB64 {
			resp.Data[i].B64JSON = onePixelPNG
		} else {
			resp.Data[i].URL = "https://simulator.invalid/images/" + x.id + "-" + strconv.Itoa(i) + ".png"
		}
	}
	body, err := json.Marshal(&resp)
	if err != nil {
		s.writeError(x.w, errInternal)
		return
	}
	s.answer(x, "application/json", body, 0)
}

// modelsBody lists the models the simulator claims to serve.
const modelsBody = `{"object":"list","data":[` +
	`{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},` +
	`{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},` +
	`{"id":"gpt-35-turbo","object":"model","created":1677610602,"owned_by":"system"},` +
	`{"id":"gpt-35-turbo-instruct","object":"model","created":1692901427,"owned_by":"system"},` +
	`{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"system"},` +
	`{"id":"whisper","object":"model","created":1677532384,"owned_by":"system"},` +
	`{"id":"dall-e-3","object":"model","created":1698785189,"owned_by":"system"}]}`
