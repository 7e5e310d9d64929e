package sim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

var weatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name: "get_weather",
	Parameters: shared.FunctionParameters{
		"type": "object",
		"properties": map[string]any{
			"location": map[string]any{"type": "string"},
			"unit":     map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
			"days":     map[string]any{"type": "integer"},
		},
		"required": []string{"location", "unit"},
	},
})

var timeTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_time"})

// TestOfficialClientToolCalls: with tools, the official client gets a tool
// call (plain and streamed alike) whose arguments fit the function's
// schema; after the tool's result it gets text; a named tool_choice calls
// that function with finish_reason "stop", as the API does.
func TestOfficialClientToolCalls(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Key: testKey, Seed: 7, TPM: 1_000_000, RPM: 10_000}))
	for name, opts := range clientModes(ts.URL) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			client := openai.NewClient(opts...)
			params := openai.ChatCompletionNewParams{
				Model:    "gpt-4o-deploy",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Oslo?")},
				Tools:    []openai.ChatCompletionToolUnionParam{weatherTool},
			}
			resp, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			ch := resp.Choices[0]
			if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || ch.Message.Content != "" {
				t.Fatalf("got finish %q, %d tool calls, content %q; want one tool call", ch.FinishReason, len(ch.Message.ToolCalls), ch.Message.Content)
			}
			call := ch.Message.ToolCalls[0]
			var args struct {
				Location string
				Unit     string
				Days     *int
			}
			if call.Function.Name != "get_weather" || !strings.HasPrefix(call.ID, "call_") || call.Type != "function" ||
				json.Unmarshal([]byte(call.Function.Arguments), &args) != nil || args.Location == "" ||
				(args.Unit != "celsius" && args.Unit != "fahrenheit") || args.Days == nil {
				t.Errorf("tool call: got %+v, want get_weather with arguments that fit its schema", call)
			}
			if resp.Usage.CompletionTokens < 1 || resp.Usage.PromptTokens <= 15 {
				t.Errorf("usage: got %+v, want the tool definitions in the prompt and the call in the completion", resp.Usage)
			}

			// Streamed: the same call, accumulated.
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := client.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatalf("accumulator refused chunk %+v", stream.Current())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			got := acc.Choices[0]
			if got.FinishReason != "tool_calls" || len(got.Message.ToolCalls) != 1 || got.Message.ToolCalls[0].Function.Arguments != call.Function.Arguments ||
				got.Message.ToolCalls[0].ID != call.ID || got.Message.ToolCalls[0].Function.Name != "get_weather" {
				t.Errorf("streamed: got %+v, want the non-streamed call %+v", got, call)
			}
			if acc.Usage.CompletionTokens != resp.Usage.CompletionTokens {
				t.Errorf("streamed usage: got %+v, want %+v", acc.Usage, resp.Usage)
			}

			// The tool's result: now text.
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
			params.Messages = append(params.Messages, ch.Message.ToParam(), openai.ToolMessage(`{"temp": 3}`, call.ID))
			resp, err = client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatalf("chat after the tool's result: %v", err)
			}
			if ch := resp.Choices[0]; ch.FinishReason != "stop" || ch.Message.Content == "" || len(ch.Message.ToolCalls) != 0 {
				t.Errorf("after the tool's result: got %+v, want text", ch)
			}

			// A named function: called, finish_reason stop.
			params.Messages = params.Messages[:1]
			params.Tools = []openai.ChatCompletionToolUnionParam{weatherTool, timeTool}
			params.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"})
			resp, err = client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatalf("named tool_choice: %v", err)
			}
			if ch := resp.Choices[0]; ch.FinishReason != "stop" || len(ch.Message.ToolCalls) != 1 || ch.Message.ToolCalls[0].Function.Name != "get_time" ||
				ch.Message.ToolCalls[0].Function.Arguments != "{}" {
				t.Errorf("named tool_choice: got %+v, want get_time called with {}", ch)
			}
		})
	}
}

// TestOfficialClientJSONMode: response_format json_object gets a JSON object
// (and needs "json" in the messages, as the API says); json_schema gets an
// object that fits the schema.
func TestOfficialClientJSONMode(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Key: testKey, Seed: 7, TPM: 1_000_000, RPM: 10_000}))
	client := openai.NewClient(clientModes(ts.URL)["azure"]...)
	ctx := t.Context()
	object := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	params := openai.ChatCompletionNewParams{
		Model:          "gpt-4o-deploy",
		Messages:       []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Answer in JSON: what is a gateway?")},
		ResponseFormat: object,
	}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]string
	if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &obj); err != nil || obj["answer"] == "" {
		t.Errorf("json_object: content %q, want a JSON object", resp.Choices[0].Message.Content)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != resp.Choices[0].Message.Content {
		t.Errorf("json_object streamed: got %q (%v), want %q", acc.Choices[0].Message.Content, err, resp.Choices[0].Message.Content)
	}

	params.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is a gateway?")}
	_, err = client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "json") {
		t.Errorf("json_object without json in the messages: got %v, want 400", err)
	}

	params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "city", Strict: openai.Bool(true), Schema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"name":       map[string]any{"type": "string"},
				"population": map[string]any{"type": "integer"},
				"tags":       map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			},
			"required": []string{"name", "population", "tags"},
		}},
	}}
	resp, err = client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	var city struct {
		Name       string
		Population *int
		Tags       []string
	}
	if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &city); err != nil || city.Name == "" || city.Population == nil || len(city.Tags) == 0 {
		t.Errorf("json_schema: content %q, want an object that fits the schema", resp.Choices[0].Message.Content)
	}
}

// TestToolRequestsChecked: what the API refuses, the simulator refuses, in
// its error shape with the parameter named.
func TestToolRequestsChecked(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 1})
	for _, tc := range []struct{ name, extra, param string }{
		{"tool_choice without tools", `"tool_choice":"required"`, "tool_choice"},
		{"unknown named function", `"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}`, "tool_choice"},
		{"bad tool_choice", `"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"always"`, "tool_choice"},
		{"tool without a name", `"tools":[{"type":"function","function":{}}]`, "tools[0].function.name"},
		{"no tools", `"tools":[]`, "tools"},
		{"parameters not an object", `"tools":[{"type":"function","function":{"name":"a","parameters":"x"}}]`, "tools[0].function.parameters"},
		{"parallel_tool_calls without tools", `"parallel_tool_calls":true`, "parallel_tool_calls"},
		{"function_call without functions", `"function_call":"auto"`, "function_call"},
		{"unknown named legacy function", `"functions":[{"name":"a"}],"function_call":{"name":"b"}`, "function_call"},
		{"tools not an array", `"tools":{"type":"function"}`, "tools"},
		{"unknown response_format", `"response_format":{"type":"yaml"}`, "response_format.type"},
		{"json_schema without a name", `"response_format":{"type":"json_schema","json_schema":{"schema":{}}}`, "response_format.json_schema.name"},
	} {
		body := `{"messages":[{"role":"user","content":"json please"}],` + tc.extra + `}`
		res := serve(t, s, http.MethodPost, chatPath("d"), body, nil)
		var e struct{ Error struct{ Param string } }
		decode(t, res.Body.Bytes(), &e)
		if res.Code != http.StatusBadRequest || e.Error.Param != tc.param {
			t.Errorf("%s: got %d %s, want 400 for %s", tc.name, res.Code, res.Body.String(), tc.param)
		}
	}
	// "none" with tools, and tools after a tool's result with "auto": text.
	for _, extra := range []string{
		`"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"none"`,
		`"tools":[{"type":"function","function":{"name":"a"}}]`,
	} {
		msgs := `[{"role":"user","content":"hi"}]`
		if !strings.Contains(extra, "none") {
			msgs = `[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"3"}]`
		}
		res := serve(t, s, http.MethodPost, chatPath("d"), `{"messages":`+msgs+`,`+extra+`}`, nil)
		var out struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
				Message      struct {
					Content   *string
					ToolCalls []json.RawMessage `json:"tool_calls"`
				}
			}
		}
		decode(t, res.Body.Bytes(), &out)
		if res.Code != http.StatusOK || len(out.Choices) != 1 || out.Choices[0].Message.Content == nil || len(out.Choices[0].Message.ToolCalls) != 0 ||
			!slices.Contains([]string{"stop", "length"}, out.Choices[0].FinishReason) {
			t.Errorf("%s: got %d %s, want text", extra, res.Code, res.Body.String())
		}
	}
}

// TestStreamedFixedAnswersAsTheAPISendsThem: a streamed choice ends with a
// chunk of its own (empty delta, finish_reason), so openai-go's
// accumulator reports the finished tool call and content; pieces never
// split a character, so non-ASCII arguments and content stream intact.
func TestStreamedFixedAnswersAsTheAPISendsThem(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{Key: testKey, Seed: 7, TPM: 1_000_000, RPM: 10_000}))
	client := openai.NewClient(clientModes(ts.URL)["openai"]...)
	ctx := t.Context()
	city := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "city", Parameters: shared.FunctionParameters{
		"type": "object", "properties": map[string]any{
			"name": map[string]any{"const": "東京都 – café"},
			"kind": map[string]any{"enum": []string{"ville été", "市"}},
		}}})
	params := openai.ChatCompletionNewParams{
		Model:      "gpt-4o",
		Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Which city?")},
		Tools:      []openai.ChatCompletionToolUnionParam{city},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		N:          openai.Int(2),
	}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	finished := map[int]string{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished[tc.Index] = tc.Arguments
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for k, ch := range resp.Choices {
		args := ch.Message.ToolCalls[0].Function.Arguments
		if !strings.Contains(args, "東京都 – café") || !utf8.ValidString(args) {
			t.Errorf("choice %d: arguments %q, want the const, valid UTF-8", k, args)
		}
		if got := acc.Choices[k].Message.ToolCalls[0].Function.Arguments; got != args {
			t.Errorf("choice %d streamed: %q, want %q", k, got, args)
		}
	}
	if len(finished) == 0 {
		t.Error("JustFinishedToolCall never reported the finished call")
	}

	params = openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say it in JSON.")},
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "x", Schema: map[string]any{
				"type": "object", "properties": map[string]any{"s": map[string]any{"const": "a€€€€b"}}}}}},
	}
	resp, err = client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	stream = client.Chat.Completions.NewStreaming(ctx, params)
	acc = openai.ChatCompletionAccumulator{}
	contentDone := false
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if _, ok := acc.JustFinishedContent(); ok {
			contentDone = true
		}
	}
	if want := resp.Choices[0].Message.Content; acc.Choices[0].Message.Content != want || want != `{"s":"a€€€€b"}` || !contentDone {
		t.Errorf("streamed content %q (finished reported: %v), want %q as plain, {\"s\":\"a€€€€b\"}", acc.Choices[0].Message.Content, contentDone, want)
	}
}

// TestSchemaAnswersFitTheSchema: $ref to $defs, bounds, lengths, item
// counts and formats are followed; a recursive schema ends.
func TestSchemaAnswersFitTheSchema(t *testing.T) {
	t.Parallel()
	schema := `{"type":"object","$defs":{"L":{"type":"array","items":{"type":"string","format":"email"},"minItems":2,"maxItems":2},
		"N":{"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#/$defs/N"}},"required":["v"]}},
		"properties":{"year":{"type":"integer","minimum":1900,"maximum":2100},"tags":{"type":"array","maxItems":1,"items":{"type":"string","maxLength":3}},
		"list":{"$ref":"#/$defs/L"},"id":{"type":"string","format":"uuid"},"when":{"type":"string","format":"date-time"},
		"ratio":{"type":"number","minimum":0.5,"maximum":0.75},"node":{"$ref":"#/$defs/N"}},"required":["year","tags","list","id","when","ratio","node"]}`
	s := New(Options{Seed: 3})
	for seed := range 20 {
		body := `{"messages":[{"role":"user","content":"case ` + strconv.Itoa(seed) + `"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":` + schema + `}}}`
		res := serve(t, s, http.MethodPost, chatPath("d"), body, nil)
		var out struct {
			Choices []struct{ Message struct{ Content string } }
		}
		decode(t, res.Body.Bytes(), &out)
		var v struct {
			Year  int
			Tags  []string
			List  []string
			ID    string
			When  time.Time
			Ratio float64
			Node  struct {
				V    *int
				Next *struct{ V *int }
			}
		}
		content := out.Choices[0].Message.Content
		if err := json.Unmarshal([]byte(content), &v); err != nil {
			t.Fatalf("content %q: %v", content, err)
		}
		if v.Year < 1900 || v.Year > 2100 || len(v.Tags) != 1 || len(v.Tags[0]) > 3 || len(v.List) != 2 || !strings.Contains(v.List[0], "@") ||
			len(v.ID) != 36 || v.When.IsZero() || v.Ratio < 0.5 || v.Ratio > 0.75 || v.Node.V == nil || v.Node.Next == nil || v.Node.Next.V == nil {
			t.Errorf("content %s does not fit the schema", content)
		}
	}
}

// TestLegacyFunctionsAndMarkers: the deprecated functions/function_call
// answer with function_call (plain and streamed); the completion content
// filter marker cuts a tool call halfway, as it cuts text.
func TestLegacyFunctionsAndMarkers(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 5})
	const fns = `"functions":[{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}]`
	res := serve(t, s, http.MethodPost, chatPath("d"), `{"messages":[{"role":"user","content":"find it"}],`+fns+`}`, nil)
	var out struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Content      *string
				FunctionCall *struct{ Name, Arguments string } `json:"function_call"`
				ToolCalls    []json.RawMessage                 `json:"tool_calls"`
			}
		}
	}
	decode(t, res.Body.Bytes(), &out)
	m := out.Choices[0].Message
	if out.Choices[0].FinishReason != "function_call" || m.FunctionCall == nil || m.FunctionCall.Name != "lookup" || m.Content != nil || len(m.ToolCalls) != 0 {
		t.Fatalf("functions: got %s, want a function_call", res.Body.String())
	}
	res = serve(t, s, http.MethodPost, chatPath("d"), `{"messages":[{"role":"user","content":"find it"}],"stream":true,`+fns+`}`, nil)
	var args strings.Builder
	finish := ""
	for ev := range strings.SplitSeq(res.Body.String(), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				FinishReason *string `json:"finish_reason"`
				Delta        struct {
					FunctionCall *struct{ Arguments string } `json:"function_call"`
				}
			}
		}
		decode(t, []byte(data), &c)
		for _, ch := range c.Choices {
			if ch.Delta.FunctionCall != nil {
				args.WriteString(ch.Delta.FunctionCall.Arguments)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if args.String() != m.FunctionCall.Arguments || finish != "function_call" {
		t.Errorf("functions streamed: arguments %q finish %q, want %q function_call", args.String(), finish, m.FunctionCall.Arguments)
	}
	// After the function's result: text.
	res = serve(t, s, http.MethodPost, chatPath("d"), `{"messages":[{"role":"user","content":"find it"},{"role":"function","name":"lookup","content":"42"}],`+fns+`}`, nil)
	out.Choices = nil
	decode(t, res.Body.Bytes(), &out)
	if out.Choices[0].Message.Content == nil || out.Choices[0].Message.FunctionCall != nil {
		t.Errorf("after the function's result: got %s, want text", res.Body.String())
	}

	res = serve(t, s, http.MethodPost, chatPath("d"), `{"messages":[{"role":"user","content":"[[content_filter:completion]] [[tokens:40]]"}],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","minLength":60}}}}}]}`, nil)
	var cut struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				ToolCalls []struct{ Function struct{ Arguments string } } `json:"tool_calls"`
			}
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	decode(t, res.Body.Bytes(), &cut)
	if cut.Choices[0].FinishReason != "content_filter" || json.Valid([]byte(cut.Choices[0].Message.ToolCalls[0].Function.Arguments)) {
		t.Errorf("content filter marker with a tool call: got %s, want it cut halfway, finish_reason content_filter", res.Body.String())
	}
}

// TestSchemaExtremeBounds: bounds at the ends of the float range, or
// inverted, still give a value in the JSON.
func TestSchemaExtremeBounds(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 1})
	for _, prop := range []string{
		`{"type":"integer","minimum":-1e308,"maximum":1e308}`,
		`{"type":"integer","minimum":9.3e18,"maximum":-9.3e18}`,
		`{"type":"number","minimum":-1.7e308,"maximum":1.7e308}`,
		`{"type":"array","minItems":-5,"maxItems":1e300,"items":{"type":"string","maxLength":-1,"minLength":1e300}}`,
		`{"type":"array","minItems":-5,"maxItems":-5}`,
		// 16^8 values if nothing bounded the whole
		`{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"array","minItems":16,"items":{"$ref":"#/$defs/A"}}`,
	} {
		body := `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"p":` + prop + `}}}}}`
		res := serve(t, s, http.MethodPost, chatPath("d"), body, nil)
		if res.Code != http.StatusOK || res.Body.Len() > 1<<20 {
			t.Errorf("%s: got %d, %d bytes: %.300s", prop, res.Code, res.Body.Len(), res.Body.String())
		}
	}
}
