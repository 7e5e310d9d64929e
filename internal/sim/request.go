package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Request limits.
const (
	maxBodyBytes    = 32 << 20 // JSON and multipart bodies
	maxChoicesPerN  = 16       // n and best_of
	maxChoices      = 128      // choices in one answer
	maxInputs       = 2048     // prompts or embedding inputs
	maxDimensions   = 3072
	maxImages       = 10
	maxTokensLimit  = 1 << 20 // largest accepted max_tokens
	defaultEmbedDim = 16
	maxNameLen      = 128
)

// operation is what a route asks for.
type operation uint8

const (
	opChat operation = iota + 1
	opCompletions
	opEmbeddings
	opTranscriptions
	opTranslations
	opImages
	opModels
)

// route is a parsed request path.
type route struct {
	op operation
	// azure is true for /openai/deployments/{id}/... paths.
	azure bool
	// deployment is the {id} of an Azure path; empty for the OpenAI-style paths.
	deployment string
}

// parseRoute maps a request path to a route.
func parseRoute(path string) (route, bool) {
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		id, suffix, ok := strings.Cut(rest, "/")
		if !ok {
			return route{}, false
		}
		op := operationOf(suffix)
		if op == 0 || op == opModels {
			return route{}, false
		}
		return route{op: op, azure: true, deployment: id}, true
	}
	if path == "/openai/models" {
		return route{op: opModels}, true
	}
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		rest, ok = strings.CutPrefix(path, "/openai/v1/")
	}
	if !ok {
		return route{}, false
	}
	op := operationOf(rest)
	return route{op: op}, op != 0
}

func operationOf(suffix string) operation {
	switch suffix {
	case "chat/completions":
		return opChat
	case "completions":
		return opCompletions
	case "embeddings":
		return opEmbeddings
	case "audio/transcriptions":
		return opTranscriptions
	case "audio/translations":
		return opTranslations
	case "images/generations":
		return opImages
	case "models":
		return opModels
	}
	return 0
}

// validName reports whether s can name a deployment or model: 1 to 128 letters, digits and
// . _ - : characters.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}

// validAPIVersion accepts YYYY-MM-DD and YYYY-MM-DD-preview.
func validAPIVersion(v string) bool {
	date, suffix, _ := strings.Cut(v, "-preview")
	if suffix != "" || len(date) != 10 {
		return false
	}
	for i := 0; i < len(date); i++ {
		if i == 4 || i == 7 {
			if date[i] != '-' {
				return false
			}
		} else if date[i] < '0' || date[i] > '9' {
			return false
		}
	}
	return true
}

// call is a validated request: everything the simulator needs to answer it.
type call struct {
	op           operation
	model        string
	stream       bool
	includeUsage bool
	prompt       prompt
	maxTokens    int64 // max_completion_tokens or max_tokens; 0 if absent
	prompts      int   // completions: number of prompts
	n            int   // choices per prompt
	bestOf       int   // completions: candidates per prompt charged to the quota
	inputs       []uint64
	dimensions   int
	base64       bool
	images       int
	imagesB64    bool
	audioFormat  string
	audioBytes   int64
	fixed        *fixedAnswer // chat: a tool call or JSON content instead of text
}

// choices is the number of choices in the answer.
func (c *call) choices() int { return c.prompts * c.n }

// limit is the cap on each choice's completion tokens; 0 means none.
func (c *call) limit() int64 {
	if c.maxTokens == 0 && c.op == opCompletions {
		return defaultMaxTokens
	}
	return c.maxTokens
}

// cost is the quota estimate charged at admission. seed is the server's:
// a chat request without max_tokens is charged the length its answer will
// have (planned from seed and prompt, as the answer is), so the tokens it
// reports never exceed what was charged and the quota holds by usage too.
func (c *call) cost(seed int64) int64 {
	switch c.op {
	case opChat, opCompletions:
		perChoice := c.maxTokens
		if perChoice == 0 && c.op == opChat {
			var planned int64
			for k := range c.choices() {
				ch := c.plan(seed, k, 0)
				planned += ch.n
			}
			return c.prompt.tokens + planned
		}
		if perChoice == 0 {
			perChoice = defaultMaxTokens
		}
		return c.prompt.tokens + perChoice*int64(c.prompts*max(c.n, c.bestOf))
	case opEmbeddings:
		return c.prompt.tokens
	default:
		return 0
	}
}

type wireRequest struct {
	Model               string          `json:"model"`
	Messages            []wireMessage   `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	N                   *int64          `json:"n"`
	BestOf              *int64          `json:"best_of"`
	Stream              *bool           `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Dimensions        *int64          `json:"dimensions"`
	EncodingFormat    string          `json:"encoding_format"`
	ResponseFormat    json.RawMessage `json:"response_format"`
	Tools             json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls json.RawMessage `json:"parallel_tool_calls"`
	Functions         json.RawMessage `json:"functions"`
	FunctionCall      json.RawMessage `json:"function_call"`
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name"`
}

type wirePart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// readBody reads at most maxBodyBytes of r's body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	var (
		b   []byte
		err error
	)
	if n := r.ContentLength; n > 0 && n <= maxBodyBytes {
		b = make([]byte, n)
		_, err = io.ReadFull(body, b)
	} else {
		b, err = io.ReadAll(body)
	}
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		return nil, badRequest("", "Could not read the request body.")
	}
	return b, nil
}

// parseJSON validates the JSON body of a chat, completions, embeddings or images request.
func parseJSON(op operation, body []byte) (*call, *apiError) {
	var req wireRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("", "We could not parse the JSON body of your request. (%v)", err)
	}
	c := &call{op: op, model: req.Model, prompt: newPrompt(), prompts: 1, n: 1}
	var e *apiError
	if op == opChat || op == opCompletions {
		if c.n, e = intParam("n", req.N, 1, 1, maxChoicesPerN); e != nil {
			return nil, e
		}
	}
	switch op {
	case opChat:
		e = c.parseChat(&req)
	case opCompletions:
		e = c.parseCompletions(&req)
	case opEmbeddings:
		e = c.parseEmbeddings(&req)
	case opImages:
		e = c.parseImages(&req)
	}
	if e != nil {
		return nil, e
	}
	if op == opChat || op == opCompletions {
		if req.Stream != nil {
			c.stream = *req.Stream
		}
		c.includeUsage = c.stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		mt := req.MaxTokens
		if req.MaxCompletionTokens != nil {
			mt = req.MaxCompletionTokens
		}
		param := "max_tokens"
		if req.MaxCompletionTokens != nil {
			param = "max_completion_tokens"
		}
		max64, e := intParam(param, mt, 0, 1, maxTokensLimit)
		if e != nil {
			return nil, e
		}
		c.maxTokens = int64(max64)
		if c.choices() > maxChoices {
			return nil, badRequest("n", "Too many choices: %d, at most %d.", c.choices(), maxChoices)
		}
	}
	return c, nil
}

// intParam validates an optional integer parameter; def is its value when absent.
func intParam(name string, v *int64, def, lo, hi int64) (int, *apiError) {
	if v == nil {
		return int(def), nil
	}
	if *v < lo || *v > hi {
		return 0, badRequest(name, "%d is not a valid value for '%s': it must be between %d and %d.",
			*v, name, lo, hi)
	}
	return int(*v), nil
}

func (c *call) parseChat(req *wireRequest) *apiError {
	if len(req.Messages) == 0 {
		return badRequest("messages", "'messages' is a required property and must not be empty.")
	}
	p := &c.prompt
	p.tokens = replyPriming
	for i := range req.Messages {
		m := &req.Messages[i]
		p.tokens += messageOverhead
		p.hash = hashString(p.hash, m.Role)
		if m.Name != "" {
			p.addText(m.Name)
		}
		if e := p.addContent(m.Content); e != nil {
			return e
		}
	}
	return c.parseTools(req, req.Messages[len(req.Messages)-1].Role)
}

// addContent counts a message content: a string, null, or an array of parts.
func (p *prompt) addContent(raw json.RawMessage) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch raw[0] {
	case '"':
		s, ok := plainJSONString(raw)
		if !ok {
			if err := json.Unmarshal(raw, &s); err != nil {
				return badRequest("messages", "Invalid message content: %v", err)
			}
		}
		p.addText(s)
	case '[':
		var parts []wirePart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return badRequest("messages", "Invalid message content parts: %v", err)
		}
		for _, part := range parts {
			if part.Type == "image_url" {
				p.tokens += imagePartTokens
				continue
			}
			p.addText(part.Text)
		}
	default:
		return badRequest("messages", "Message content must be a string or an array of parts.")
	}
	return nil
}

// plainJSONString decodes a JSON string literal without escapes or control characters, the
// common case, without the JSON decoder; ok is false for any other input.
func plainJSONString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

func (c *call) parseCompletions(req *wireRequest) *apiError {
	bestOf, e := intParam("best_of", req.BestOf, 1, 1, maxChoicesPerN)
	if e != nil {
		return e
	}
	c.bestOf = bestOf
	n, e := c.addTexts("prompt", req.Prompt, nil)
	if e != nil {
		return e
	}
	c.prompts = max(n, 1)
	return nil
}

func (c *call) parseEmbeddings(req *wireRequest) *apiError {
	if len(bytes.TrimSpace(req.Input)) == 0 || string(bytes.TrimSpace(req.Input)) == "null" {
		return badRequest("input", "'input' is a required property.")
	}
	n, e := c.addTexts("input", req.Input, &c.inputs)
	if e != nil {
		return e
	}
	if n == 0 {
		return badRequest("input", "'input' must not be empty.")
	}
	dims, e := intParam("dimensions", req.Dimensions, defaultEmbedDim, 1, maxDimensions)
	if e != nil {
		return e
	}
	c.dimensions = dims
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		c.base64 = true
	default:
		return badRequest("encoding_format", "'%s' is not one of ['float', 'base64'].", req.EncodingFormat)
	}
	return nil
}

func (c *call) parseImages(req *wireRequest) *apiError {
	var text string
	if err := json.Unmarshal(orNull(req.Prompt), &text); err != nil || text == "" {
		return badRequest("prompt", "'prompt' is a required string.")
	}
	c.prompt.addText(text)
	n, e := intParam("n", req.N, 1, 1, maxImages)
	if e != nil {
		return e
	}
	c.images, c.n = n, 1
	var format string
	if len(req.ResponseFormat) > 0 {
		if err := json.Unmarshal(req.ResponseFormat, &format); err != nil {
			return badRequest("response_format", "'response_format' must be 'url' or 'b64_json'.")
		}
	}
	switch format {
	case "", "url":
	case "b64_json":
		c.imagesB64 = true
	default:
		return badRequest("response_format", "'%s' is not one of ['url', 'b64_json'].", format)
	}
	return nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// addTexts counts a string, an array of strings, an array of token ids or an array of arrays
// of token ids into the prompt, returns the number of items and, if hashes is not nil, appends
// each item's own hash to it.
func (c *call) addTexts(param string, raw json.RawMessage, hashes *[]uint64) (int, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	invalid := func() *apiError {
		return badRequest(param, "'%s' must be a string, an array of strings, an array of "+
			"integers or an array of arrays of integers.", param)
	}
	p := &c.prompt
	one := func(item prompt) {
		p.tokens += item.tokens
		p.hash = hashUint(p.hash, item.hash)
		p.filter = p.filter || item.filter
		p.filterCompletion = p.filterCompletion || item.filterCompletion
		if item.forced >= 0 {
			p.forced = item.forced
		}
		if hashes != nil {
			*hashes = append(*hashes, item.hash)
		}
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, invalid()
		}
		item := newPrompt()
		item.addText(s)
		one(item)
		return 1, nil
	case '[':
	default:
		return 0, invalid()
	}
	first := bytes.TrimSpace(raw[1:])
	if len(first) == 0 {
		return 0, invalid()
	}
	var n int
	switch {
	case first[0] == ']':
		return 0, nil
	case first[0] == '"':
		var items []string
		if err := json.Unmarshal(raw, &items); err != nil {
			return 0, invalid()
		}
		if n = len(items); n > maxInputs {
			break
		}
		for _, s := range items {
			item := newPrompt()
			item.addText(s)
			one(item)
		}
	case first[0] == '[':
		var items [][]int64
		if err := json.Unmarshal(raw, &items); err != nil {
			return 0, invalid()
		}
		if n = len(items); n > maxInputs {
			break
		}
		for _, ids := range items {
			item := newPrompt()
			item.addTokenIDs(ids)
			one(item)
		}
	default:
		var ids []int64
		if err := json.Unmarshal(raw, &ids); err != nil {
			return 0, invalid()
		}
		item := newPrompt()
		item.addTokenIDs(ids)
		one(item)
		n = 1
	}
	if n > maxInputs {
		return 0, badRequest(param, "Too many items in '%s': %d, at most %d.", param, n, maxInputs)
	}
	return n, nil
}
