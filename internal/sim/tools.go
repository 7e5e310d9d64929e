package sim

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Function calling and JSON mode. A chat request with tools gets a call of
// one of them (tool_choice "required", a named function, or "auto" while the
// last message is not a tool's result; "auto" after a tool's result, and
// "none", get text), with arguments made from the function's parameters
// schema. A response_format of json_object or json_schema gets a JSON
// object as content (json_object: {"answer": text}; json_schema: made from
// the schema). Both are deterministic per seed and prompt, like text.

// maxTools bounds the tools of one request (Azure's limit).
const maxTools = 128

// fixedAnswer is a chat answer planned whole at parse time: a tool call or
// JSON content. Its text is streamed in pieces of piece bytes, one token each.
type fixedAnswer struct {
	tool   string // the function called; "" for JSON content
	forced bool   // tool_choice named the function: finish_reason "stop", as the API does
	schema any    // the parameters or the response schema (decoded JSON); nil: none
}

const piece = 4 // bytes per generated token of a fixed answer

type wireTool struct {
	Type     string `json:"type"`
	Function *struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// parseTools plans the answer of a chat request with tools or a
// response_format; lastRole is the role of its last message.
func (c *call) parseTools(req *wireRequest, lastRole string) *apiError {
	var tools []wireTool
	if raw := bytes.TrimSpace(req.Tools); len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &tools); err != nil {
			return badRequest("tools", "Invalid type for 'tools': expected an array of objects.")
		}
		if len(tools) > maxTools {
			return badRequest("tools", "Invalid 'tools': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxTools, len(tools))
		}
		for i, t := range tools {
			if t.Type != "function" || t.Function == nil || !validFunctionName(t.Function.Name) {
				return badRequest("tools["+strconv.Itoa(i)+"]", "Invalid 'tools[%d]': each tool needs \"type\": \"function\" and a function name of 1 to 64 letters, digits, _ or -.", i)
			}
		}
		c.prompt.tokens += textTokens(string(raw)) // the definitions are part of the prompt
	}
	choice, named, e := parseToolChoice(req.ToolChoice, len(tools) > 0)
	if e != nil {
		return e
	}
	switch {
	case named != "":
		for _, t := range tools {
			if t.Function.Name == named {
				c.fixed = &fixedAnswer{tool: named, forced: true, schema: decodeSchema(t.Function.Parameters)}
				return nil
			}
		}
		return badRequest("tool_choice", "Invalid value for 'tool_choice': function '%s' is not one of the tools.", named)
	case len(tools) > 0 && (choice == "required" || (choice == "auto" && lastRole != "tool" && lastRole != "function")):
		t := tools[c.prompt.hash%uint64(len(tools))]
		c.fixed = &fixedAnswer{tool: t.Function.Name, schema: decodeSchema(t.Function.Parameters)}
		return nil
	}
	return c.parseResponseFormat(req.ResponseFormat, req.Messages)
}

// mentionsJSON reports whether a message's content says "json", in any case.
func mentionsJSON(msgs []wireMessage) bool {
	for _, m := range msgs {
		if bytes.Contains(bytes.ToLower(m.Content), []byte("json")) {
			return true
		}
	}
	return false
}

// parseToolChoice reads tool_choice: "none", "auto", "required" or
// {"type":"function","function":{"name":...}} (named). Absent: "auto" with
// tools, "none" without.
func parseToolChoice(raw json.RawMessage, haveTools bool) (choice, named string, e *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		if haveTools {
			return "auto", "", nil
		}
		return "none", "", nil
	}
	if raw[0] == '"' {
		_ = json.Unmarshal(raw, &choice)
		switch choice {
		case "none", "auto", "required":
			if choice != "none" && !haveTools {
				return "", "", badRequest("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
			}
			return choice, "", nil
		}
		return "", "", badRequest("tool_choice", "Invalid value for 'tool_choice': %s. Supported values are: 'none', 'auto' and 'required'.", raw)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return "", "", badRequest("tool_choice", "Invalid value for 'tool_choice': expected a string or {\"type\": \"function\", \"function\": {\"name\": ...}}.")
	}
	if !haveTools {
		return "", "", badRequest("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
	}
	return "function", obj.Function.Name, nil
}

// parseResponseFormat reads response_format: text (or absent), json_object
// (the messages must say "json", as the API requires) or json_schema.
func (c *call) parseResponseFormat(raw json.RawMessage, msgs []wireMessage) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return badRequest("response_format", "Invalid type for 'response_format': expected an object.")
	}
	switch rf.Type {
	case "text":
		return nil
	case "json_object":
		if !mentionsJSON(msgs) {
			return badRequest("messages", "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.")
		}
		c.fixed = &fixedAnswer{}
		return nil
	case "json_schema":
		if rf.JSONSchema == nil || rf.JSONSchema.Name == "" {
			return badRequest("response_format.json_schema", "Missing required parameter: 'response_format.json_schema.name'.")
		}
		c.fixed = &fixedAnswer{schema: decodeSchema(rf.JSONSchema.Schema)}
		return nil
	}
	return badRequest("response_format.type", "Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.", rf.Type)
}

// validFunctionName: 1 to 64 of a-z, A-Z, 0-9, _ and -.
func validFunctionName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

func decodeSchema(raw json.RawMessage) any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}

// text is a choice's fixed answer: the call's arguments or the JSON
// content, words drawn from r (natural: the words of a json_object answer).
func (f *fixedAnswer) text(r *rng, natural int64) string {
	var v any
	switch {
	case f.schema != nil:
		v = valueOf(f.schema, r, 0)
	case f.tool != "":
		v = map[string]any{}
	default:
		v = map[string]any{"answer": words(r, natural)}
	}
	if _, ok := v.(map[string]any); !ok {
		v = map[string]any{"value": v} // arguments and JSON content are objects
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// valueOf makes a value that fits a JSON schema (types, properties,
// items, enum, const, anyOf/oneOf: the first).
func valueOf(schema any, r *rng, depth int) any {
	s, _ := schema.(map[string]any)
	if s == nil || depth > 6 {
		return words(r, 1)
	}
	if v, ok := s["const"]; ok {
		return v
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[r.next()%uint64(len(e))]
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[k].([]any); ok && len(alts) > 0 {
			return valueOf(alts[0], r, depth+1)
		}
	}
	typ, _ := s["type"].(string)
	if ts, ok := s["type"].([]any); ok && len(ts) > 0 { // ["string", "null"]
		typ, _ = ts[0].(string)
	}
	if typ == "" {
		if _, ok := s["properties"]; ok {
			typ = "object"
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(props)) { // in order: the draws are deterministic
			out[name] = valueOf(props[name], r, depth+1)
		}
		return out
	case "array":
		n := 1 + int(r.next()%3)
		if m, ok := s["minItems"].(float64); ok && int(m) > n {
			n = min(int(m), 16)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = valueOf(s["items"], r, depth+1)
		}
		return out
	case "integer":
		return int64(r.next() % 100)
	case "number":
		return float64(r.next()%10000) / 100
	case "boolean":
		return r.next()%2 == 0
	case "null":
		return nil
	}
	return words(r, 1+int64(r.next()%3))
}

// words draws n words of the vocabulary, space separated.
func words(r *rng, n int64) string {
	var b strings.Builder
	for i := range max(n, 1) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[r.next()%uint64(len(vocabulary))])
	}
	return b.String()
}

// toolCallID is the id of choice k's tool call: "call_" and 24 characters.
func toolCallID(r rng, k int) string {
	const digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r.s ^= uint64(k+1) * 0x9e3779b97f4a7c15
	b := []byte("call_")
	for range 24 {
		b = append(b, digits[r.next()%uint64(len(digits))])
	}
	return string(b)
}

type toolCallJSON struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// appendJSONText appends s escaped for the inside of a JSON string.
func appendJSONText(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q[1:len(q)-1]...)
}

// plan plans choice k of the answer, cut by limit (0: none): text, or the
// fixed answer the request asked for.
func (c *call) plan(seed int64, k int, limit int64) choice {
	if c.fixed == nil {
		return newChoice(seed, &c.prompt, k, limit)
	}
	ch := newChoice(seed, &c.prompt, k, 0)
	r := rng{s: ch.start}
	ch.fixed = c.fixed.text(&r, ch.n)
	ch.n = int64(len(ch.fixed)+piece-1) / piece
	ch.finish = "stop"
	if c.fixed.tool != "" && !c.fixed.forced {
		ch.finish = "tool_calls"
	}
	if limit > 0 && ch.n > limit {
		ch.n, ch.finish = limit, "length"
	}
	return ch
}

// callID is the id of choice k's tool call.
func (c *call) callID(seed int64, k int) string {
	return toolCallID(rng{s: mix(uint64(seed), c.prompt.hash, 0x7001)}, k)
}
