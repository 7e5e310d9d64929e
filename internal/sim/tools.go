package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Function calling and JSON mode. A chat request with tools gets a call of
// one of them (tool_choice "required", a named function, or "auto" while the
// last message is not a tool's result; "auto" after a tool's result, and
// "none", get text), with arguments made from the function's parameters
// schema. The deprecated functions and function_call work the same way and
// answer with function_call. A response_format of json_object or
// json_schema gets a JSON object as content (json_object: {"answer": text};
// json_schema: made from the schema). All are deterministic per seed and
// prompt, like text.

// maxTools bounds the tools of one request (Azure's limit).
const maxTools = 128

// fixedAnswer is a chat answer planned whole at parse time: a tool call, a
// function call, or JSON content. Its text is streamed in pieces of about
// piece bytes, one token each.
type fixedAnswer struct {
	tool   string // the function called; "" for JSON content
	legacy bool   // functions/function_call: the answer is a function_call, not tool_calls
	forced bool   // the request named the function: finish_reason "stop", as the API does
	schema any    // the parameters or the response schema (decoded JSON); nil: none
}

const piece = 4 // bytes per generated token of a fixed answer

// pieceEnd is where the piece of s that starts at byte at ends: piece bytes
// on, moved forward to the start of a character, so that no piece splits
// one.
func pieceEnd(s string, at int) int {
	end := min(at+piece, len(s))
	for end < len(s) && !utf8.RuneStart(s[end]) {
		end++
	}
	return end
}

// function is a function a request offers, from tools or functions.
type function struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

type wireTool struct {
	Type     string    `json:"type"`
	Function *function `json:"function"`
}

// parseTools plans the answer of a chat request with tools, functions or a
// response_format; lastRole is the role of its last message.
func (c *call) parseTools(req *wireRequest, lastRole string) *apiError {
	tools, e := c.parseToolList(req.Tools)
	if e != nil {
		return e
	}
	if present(req.ParallelToolCalls) && len(tools) == 0 {
		return badRequest("parallel_tool_calls", "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.")
	}
	choice, named, e := parseChoice("tool_choice", req.ToolChoice, len(tools) > 0, true)
	if e != nil {
		return e
	}
	legacy := false
	if len(tools) == 0 && present(req.Functions) {
		var fns []function
		if err := json.Unmarshal(req.Functions, &fns); err != nil || len(fns) == 0 {
			return badRequest("functions", "Invalid 'functions': expected a non-empty array of objects.")
		}
		for i, f := range fns {
			if e := checkFunction("functions["+strconv.Itoa(i)+"]", &f); e != nil {
				return e
			}
		}
		c.prompt.tokens += textTokens(string(req.Functions))
		if choice, named, e = parseChoice("function_call", req.FunctionCall, true, false); e != nil {
			return e
		}
		tools, legacy = make([]function, len(fns)), true
		copy(tools, fns)
	} else if present(req.FunctionCall) {
		return badRequest("function_call", "Invalid value for 'function_call': 'function_call' is only allowed when 'functions' are specified.")
	}
	resultRole := "tool"
	if legacy {
		resultRole = "function"
	}
	switch {
	case named != "":
		for _, f := range tools {
			if f.Name == named {
				c.fixed = &fixedAnswer{tool: named, legacy: legacy, forced: true, schema: decodeSchema(f.Parameters)}
				return nil
			}
		}
		param := "tool_choice"
		if legacy {
			param = "function_call"
		}
		return badRequest(param, "Invalid value for '%s': function '%s' is not one of the functions offered.", param, named)
	case len(tools) > 0 && (choice == "required" || (choice == "auto" && lastRole != resultRole)):
		f := tools[c.prompt.hash%uint64(len(tools))]
		c.fixed = &fixedAnswer{tool: f.Name, legacy: legacy, schema: decodeSchema(f.Parameters)}
		return nil
	}
	return c.parseResponseFormat(req.ResponseFormat, req.Messages)
}

// parseToolList reads and checks tools; their definitions count as prompt.
func (c *call) parseToolList(raw json.RawMessage) ([]function, *apiError) {
	if !present(raw) {
		return nil, nil
	}
	var tools []wireTool
	if err := json.Unmarshal(raw, &tools); err != nil {
		return nil, badRequest("tools", "Invalid type for 'tools': expected an array of objects.")
	}
	switch {
	case len(tools) == 0:
		return nil, badRequest("tools", "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	case len(tools) > maxTools:
		return nil, badRequest("tools", "Invalid 'tools': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxTools, len(tools))
	}
	out := make([]function, len(tools))
	for i, t := range tools {
		at := "tools[" + strconv.Itoa(i) + "]"
		if t.Type != "function" {
			return nil, badRequest(at+".type", "Invalid value for '%s.type': expected 'function'.", at)
		}
		if t.Function == nil {
			return nil, badRequest(at+".function", "Missing required parameter: '%s.function'.", at)
		}
		if e := checkFunction(at+".function", t.Function); e != nil {
			return nil, e
		}
		out[i] = *t.Function
	}
	c.prompt.tokens += textTokens(string(raw))
	return out, nil
}

// checkFunction checks a function definition at param.
func checkFunction(param string, f *function) *apiError {
	if f.Name == "" {
		return badRequest(param+".name", "Missing required parameter: '%s.name'.", param)
	}
	if !validFunctionName(f.Name) {
		return badRequest(param+".name", "Invalid '%s.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' of at most 64 characters.", param)
	}
	if p := bytes.TrimSpace(f.Parameters); len(p) > 0 && p[0] != '{' && string(p) != "null" {
		return badRequest(param+".parameters", "Invalid type for '%s.parameters': expected an object.", param)
	}
	return nil
}

// present reports whether a JSON value was given and is not null.
func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && string(raw) != "null"
}

// parseChoice reads tool_choice ("none", "auto", "required" or
// {"type":"function","function":{"name":...}}) or the deprecated
// function_call ("none", "auto" or {"name":...}) into choice and, for a
// named function, named. Absent: "auto" with tools, "none" without.
func parseChoice(param string, raw json.RawMessage, haveTools, isTool bool) (choice, named string, e *apiError) {
	if !present(raw) {
		if haveTools {
			return "auto", "", nil
		}
		return "none", "", nil
	}
	raw = bytes.TrimSpace(raw)
	onlyWith := badRequest(param, "Invalid value for '%s': '%s' is only allowed when 'tools' are specified.", param, param)
	if raw[0] == '"' {
		_ = json.Unmarshal(raw, &choice)
		switch {
		case choice == "none" || choice == "auto" || (choice == "required" && isTool):
			if choice != "none" && !haveTools {
				return "", "", onlyWith
			}
			return choice, "", nil
		}
		return "", "", badRequest(param, "Invalid value for '%s': %s. Supported values are: 'none', 'auto' and 'required'.", param, raw)
	}
	var obj struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	err := json.Unmarshal(raw, &obj)
	name := obj.Name
	if isTool {
		name = obj.Function.Name
	}
	if err != nil || name == "" || (isTool && obj.Type != "function") {
		want := `{"name": ...}`
		if isTool {
			want = `{"type": "function", "function": {"name": ...}}`
		}
		return "", "", badRequest(param, "Invalid value for '%s': expected a string or %s.", param, want)
	}
	if !haveTools {
		return "", "", onlyWith
	}
	return "function", name, nil
}

// parseResponseFormat reads response_format: text (or absent), json_object
// (the messages must say "json", as the API requires) or json_schema.
func (c *call) parseResponseFormat(raw json.RawMessage, msgs []wireMessage) *apiError {
	if !present(raw) {
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
			return badRequest("response_format.json_schema.name", "Missing required parameter: 'response_format.json_schema.name'.")
		}
		c.fixed = &fixedAnswer{schema: decodeSchema(rf.JSONSchema.Schema)}
		return nil
	}
	return badRequest("response_format.type", "Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.", rf.Type)
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
		g := schemaGen{root: f.schema, r: r}
		v = g.value(f.schema, 0)
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

// schemaGen makes values that fit a JSON schema: types, properties, items,
// enum, const, anyOf/oneOf/allOf (the first), local $ref ("#/$defs/...",
// "#/definitions/..."), minimum/maximum, minItems/maxItems,
// minLength/maxLength and the common string formats. (pattern is not
// followed.)
type schemaGen struct {
	root any
	r    *rng
	made int // values made so far, up to maxSchemaValues
}

const (
	maxSchemaDepth  = 8
	maxMinLength    = 256  // the longest string a minLength makes
	maxSchemaValues = 4096 // values in one answer: nested arrays cannot blow it up
)

func (g *schemaGen) value(schema any, depth int) any {
	s, _ := schema.(map[string]any)
	if g.made++; s == nil || depth > maxSchemaDepth || g.made > maxSchemaValues {
		return words(g.r, 1)
	}
	if ref, ok := s["$ref"].(string); ok {
		return g.value(g.resolve(ref), depth+1)
	}
	if v, ok := s["const"]; ok {
		return v
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[g.r.next()%uint64(len(e))]
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[k].([]any); ok && len(alts) > 0 {
			return g.value(alts[0], depth+1)
		}
	}
	typ, _ := s["type"].(string)
	if ts, ok := s["type"].([]any); ok && len(ts) > 0 { // ["string", "null"]
		typ, _ = ts[0].(string)
	}
	if typ == "" {
		switch {
		case s["properties"] != nil:
			typ = "object"
		case s["items"] != nil:
			typ = "array"
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		if depth >= maxSchemaDepth-1 { // a recursive schema ends in its required properties
			props = only(props, s["required"])
		}
		for _, name := range slices.Sorted(maps.Keys(props)) { // in order: the draws are deterministic
			out[name] = g.value(props[name], depth+1)
		}
		return out
	case "array":
		lo, hi := min(max(num(s["minItems"], 1), 0), 16), num(s["maxItems"], 3)
		if depth >= maxSchemaDepth-1 {
			hi = lo
		}
		n := g.between(lo, min(max(hi, lo), 16))
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(s["items"], depth+1)
		}
		return out
	case "integer":
		lo, hi := num(s["minimum"], 0), num(s["maximum"], 99)
		return g.between(lo, max(hi, lo))
	case "number":
		lo, hi := numF(s["minimum"], 0), numF(s["maximum"], 100)
		return lo + float64(g.r.next()%10001)/10000*(max(hi, lo)-lo)
	case "boolean":
		return g.r.next()%2 == 0
	case "null":
		return nil
	}
	return g.str(s)
}

// str makes a string of a schema's format and length.
func (g *schemaGen) str(s map[string]any) string {
	w := vocabulary[g.r.next()%uint64(len(vocabulary))]
	switch s["format"] {
	case "email":
		return w + "@example.com"
	case "uri", "url":
		return "https://example.com/" + w
	case "date":
		return fmt.Sprintf("2024-%02d-%02d", 1+g.r.next()%12, 1+g.r.next()%28)
	case "date-time":
		return fmt.Sprintf("2024-%02d-%02dT%02d:%02d:00Z", 1+g.r.next()%12, 1+g.r.next()%28, g.r.next()%24, g.r.next()%60)
	case "time":
		return fmt.Sprintf("%02d:%02d:00", g.r.next()%24, g.r.next()%60)
	case "uuid":
		x := mix64(g.r.next())
		y := mix64(x)
		return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", x>>32, x>>16&0xffff, x&0xfff, y>>52, y&0xffffffffffff)
	}
	out := words(g.r, 1+int64(g.r.next()%3))
	if lo := min(num(s["minLength"], 0), maxMinLength); int64(len(out)) < lo {
		out += strings.Repeat("a", int(lo)-len(out))
	}
	if hi := num(s["maxLength"], -1); hi >= 0 && int64(len(out)) > hi {
		out = out[:hi]
	}
	return out
}

// resolve finds a local reference: "#", "#/$defs/name", "#/definitions/name".
func (g *schemaGen) resolve(ref string) any {
	path, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil
	}
	cur := g.root
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if part == "" {
			continue
		}
		m, _ := cur.(map[string]any)
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		cur = m[part]
	}
	return cur
}

// between draws an integer in [lo, hi].
func (g *schemaGen) between(lo, hi int64) int64 {
	return lo + int64(g.r.next()%uint64(hi-lo+1))
}

// only keeps the properties a schema requires.
func only(props map[string]any, required any) map[string]any {
	req, _ := required.([]any)
	out := make(map[string]any, len(req))
	for _, r := range req {
		if name, ok := r.(string); ok && props[name] != nil {
			out[name] = props[name]
		}
	}
	return out
}

// maxBound bounds the numbers a schema's keywords give (the draws stay
// small and their arithmetic cannot overflow).
const maxBound = 1e12

func num(v any, def int64) int64 {
	if f, ok := v.(float64); ok {
		return int64(min(max(f, -maxBound), maxBound))
	}
	return def
}

func numF(v any, def float64) float64 {
	if f, ok := v.(float64); ok {
		return min(max(f, -maxBound), maxBound)
	}
	return def
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

type functionCallJSON struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type toolCallJSON struct {
	ID       string           `json:"id"`
	Type     string           `json:"type"`
	Function functionCallJSON `json:"function"`
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
	ch.n = 0
	for at := 0; at < len(ch.fixed); at = pieceEnd(ch.fixed, at) {
		ch.n++
	}
	switch {
	case c.fixed.tool == "" || c.fixed.forced:
		ch.finish = "stop"
	case c.fixed.legacy:
		ch.finish = "function_call"
	default:
		ch.finish = "tool_calls"
	}
	if limit > 0 && ch.n > limit {
		ch.n, ch.finish = limit, "length"
	}
	if c.prompt.filterCompletion {
		ch.n, ch.finish = ch.n/2, "content_filter"
	}
	return ch
}

// callID is the id of choice k's tool call.
func (c *call) callID(seed int64, k int) string {
	return toolCallID(rng{s: mix(uint64(seed), c.prompt.hash, 0x7001)}, k)
}
