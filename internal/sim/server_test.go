package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestErrorBodiesExact(t *testing.T) {
	t.Parallel()
	s := New(Options{Key: testKey})
	good := http.Header{"Api-Key": {testKey}}
	const (
		unauthorized = `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`
		notFound     = `{"error":{"code":"404","message":"Resource not found"}}`
	)
	for _, tc := range []struct {
		name   string
		method string
		target string
		header http.Header
		status int
		body   string
	}{
		{"missing key", "POST", chatPath("d"), nil, 401, unauthorized},
		{"wrong key", "POST", chatPath("d"), http.Header{"Api-Key": {"nope"}}, 401, unauthorized},
		{"wrong bearer", "POST", chatPath("d"), http.Header{"Authorization": {"Bearer nope"}}, 401, unauthorized},
		{"missing api-version", "POST", "/openai/deployments/d/chat/completions", good, 404, notFound},
		{"unknown path", "POST", "/openai/deployments/d/chat/nothing?api-version=2024-02-01", good, 404, notFound},
		{"bad api-version", "POST", "/openai/deployments/d/chat/completions?api-version=banana", good, 400,
			`{"error":{"code":"BadRequest","message":"API version not supported"}}`},
		{"bad deployment", "POST", chatPath("d%20d"), good, 404,
			`{"error":{"code":"DeploymentNotFound","message":"` + msgDeploymentNotFound + `"}}`},
		{"admin without key", "GET", "/sim/faults", nil, 401, unauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, s, tc.method, tc.target, chatBody("hi", 0, false), tc.header)
			if res.Code != tc.status || res.Body.String() != tc.body {
				t.Errorf("got %d %s\nwant %d %s", res.Code, res.Body, tc.status, tc.body)
			}
			if ct := res.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q", ct)
			}
		})
	}
	if res := serve(t, s, "POST", chatPath("d"), chatBody("hi", 0, false),
		http.Header{"Authorization": {"Bearer " + testKey}}); res.Code != 200 {
		t.Errorf("bearer key: got %d, want 200", res.Code)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	for _, tc := range []struct {
		name, target, body string
		status             int
		param              string
	}{
		{"bad json", chatPath("d"), `{"messages":`, 400, ""},
		{"no messages", chatPath("d"), `{}`, 400, "messages"},
		{"bad content", chatPath("d"), `{"messages":[{"role":"user","content":5}]}`, 400, "messages"},
		{"max_tokens zero", chatPath("d"), `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens"},
		{"n too big", chatPath("d"), `{"messages":[{"role":"user","content":"x"}],"n":1000}`, 400, "n"},
		{"no input", "/v1/embeddings", `{"model":"e"}`, 400, "input"},
		{"bad dimensions", "/v1/embeddings", `{"model":"e","input":"x","dimensions":0}`, 400, "dimensions"},
		{"bad encoding", "/v1/embeddings", `{"model":"e","input":"x","encoding_format":"hex"}`, 400, "encoding_format"},
		{"no model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model"},
		{"bad prompt", "/v1/completions", `{"model":"m","prompt":{"a":1}}`, 400, "prompt"},
		{"no image prompt", "/v1/images/generations", `{"model":"m"}`, 400, "prompt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, s, "POST", tc.target, tc.body, nil)
			var body struct{ Error apiError }
			decode(t, res.Body.Bytes(), &body)
			if res.Code != tc.status || body.Error.Param != tc.param || body.Error.Message == "" {
				t.Errorf("got %d %s, want %d with param %q", res.Code, res.Body, tc.status, tc.param)
			}
		})
	}
	if res := serve(t, s, "GET", chatPath("d"), "", nil); res.Code != 405 || res.Header().Get("Allow") != "POST" {
		t.Errorf("GET chat: got %d Allow %q, want 405 POST", res.Code, res.Header().Get("Allow"))
	}
}

func TestContentFilterMarker(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	res := serve(t, s, "POST", chatPath("d"), chatBody("please [[content_filter]] me", 0, true), nil)
	if res.Code != 400 || res.Body.String() != contentFilterBody {
		t.Fatalf("got %d %s", res.Code, res.Body)
	}
	var body struct {
		Error struct {
			Code, Param string
			Status      int
			Innererror  struct {
				Code string
			}
		}
	}
	decode(t, res.Body.Bytes(), &body)
	if e := body.Error; e.Code != "content_filter" || e.Param != "prompt" || e.Status != 400 ||
		e.Innererror.Code != "ResponsibleAIPolicyViolation" {
		t.Errorf("content filter error: got %+v", e)
	}
}

func TestCompletionLengthAndDeterminism(t *testing.T) {
	t.Parallel()
	type answer struct {
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage usageJSON
	}
	get := func(s *Server, body string) answer {
		res := serve(t, s, "POST", chatPath("d"), body, nil)
		if res.Code != 200 {
			t.Fatalf("got %d %s", res.Code, res.Body)
		}
		var a answer
		decode(t, res.Body.Bytes(), &a)
		return a
	}
	s1, s2, other := New(Options{Seed: 5}), New(Options{Seed: 5}), New(Options{Seed: 6})
	body := chatBody("determinism [[tokens:30]]", 0, false)
	a, b, c := get(s1, body), get(s2, body), get(other, body)
	if a.Choices[0].Message.Content != b.Choices[0].Message.Content {
		t.Errorf("same seed: got %q and %q", a.Choices[0].Message.Content, b.Choices[0].Message.Content)
	}
	if a.Choices[0].Message.Content == c.Choices[0].Message.Content {
		t.Errorf("different seeds gave the same content %q", a.Choices[0].Message.Content)
	}
	if a.Usage.CompletionTokens != 30 || a.Choices[0].FinishReason != "stop" || a.Choices[0].Message.Role != "assistant" {
		t.Errorf("forced 30 tokens: got %+v", a)
	}
	cut := get(s1, `{"messages":[{"role":"user","content":"determinism [[tokens:30]]"}],"max_tokens":50,"max_completion_tokens":7}`)
	if cut.Usage.CompletionTokens != 7 || cut.Choices[0].FinishReason != "length" {
		t.Errorf("max_completion_tokens 7: got %+v", cut)
	}
	if !strings.HasPrefix(a.Choices[0].Message.Content, cut.Choices[0].Message.Content) {
		t.Errorf("cut content %q is not a prefix of %q", cut.Choices[0].Message.Content, a.Choices[0].Message.Content)
	}
	for range 50 {
		u := get(s1, chatBody(time.Now().String(), 0, false)).Usage
		if u.CompletionTokens < minNaturalTokens || u.CompletionTokens > maxNaturalTokens {
			t.Fatalf("natural length %d outside %d..%d", u.CompletionTokens, minNaturalTokens, maxNaturalTokens)
		}
	}
}

func TestPromptTokenEstimate(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	for _, tc := range []struct {
		name, target, body string
		want               int64
	}{
		// 3 + (4 + ⌈6/4⌉) + (4 + ⌈8/4⌉ + ⌈3/4⌉) = 3 + 6 + 7
		{"chat", "/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"abcdef"},{"role":"user","name":"bob","content":"12345678"}]}`, 16},
		// 3 + 4 + ⌈5/4⌉ + 85
		{"chat parts", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hello"},{"type":"image_url","image_url":{"url":"x"}}]}]}`, 94},
		// ⌈5/4⌉ + ⌈4/4⌉ code points, not bytes
		{"completions", "/v1/completions", `{"model":"m","prompt":["hello","éééé"]}`, 3},
		{"token ids", "/v1/completions", `{"model":"m","prompt":[1,2,3,4,5]}`, 5},
		{"embeddings", "/v1/embeddings", `{"model":"m","input":[[1,2],[3]]}`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, s, "POST", tc.target, tc.body, nil)
			var body struct{ Usage usageJSON }
			decode(t, res.Body.Bytes(), &body)
			if body.Usage.PromptTokens != tc.want {
				t.Errorf("prompt_tokens: got %d, want %d (%s)", body.Usage.PromptTokens, tc.want, res.Body)
			}
		})
	}
}

func TestEmbeddingsBase64AndDefaults(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	var floats struct {
		Object string
		Data   []struct {
			Object    string
			Embedding []float32
		}
	}
	res := serve(t, s, "POST", "/openai/deployments/e/embeddings?api-version=2024-02-01", `{"input":"same text"}`, nil)
	decode(t, res.Body.Bytes(), &floats)
	if floats.Object != "list" || len(floats.Data) != 1 || len(floats.Data[0].Embedding) != defaultEmbedDim ||
		floats.Data[0].Object != "embedding" {
		t.Fatalf("embeddings: got %s", res.Body)
	}
	var norm float64
	for _, f := range floats.Data[0].Embedding {
		norm += float64(f) * float64(f)
	}
	if math.Abs(norm-1) > 1e-4 {
		t.Errorf("norm²: got %v, want 1", norm)
	}
	var b64 struct{ Data []struct{ Embedding string } }
	res = serve(t, s, "POST", "/v1/embeddings", `{"model":"e","input":["same text"],"encoding_format":"base64"}`, nil)
	decode(t, res.Body.Bytes(), &b64)
	raw, err := base64.StdEncoding.DecodeString(b64.Data[0].Embedding)
	if err != nil || len(raw) != 4*defaultEmbedDim {
		t.Fatalf("base64 embedding: %v, %d bytes", err, len(raw))
	}
	for i, want := range floats.Data[0].Embedding {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != want {
			t.Fatalf("base64 value %d: got %v, want %v", i, got, want)
		}
	}
}

func TestAudioAndImages(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	form := func(fields map[string]string, file bool) (string, http.Header) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range fields {
			_ = mw.WriteField(k, v)
		}
		if file {
			fw, _ := mw.CreateFormFile("file", "a.wav")
			_, _ = fw.Write(bytes.Repeat([]byte{1, 2, 3, 4}, 16000))
		}
		_ = mw.Close()
		return buf.String(), http.Header{"Content-Type": {mw.FormDataContentType()}}
	}
	body, hdr := form(nil, true)
	res := serve(t, s, "POST", "/openai/deployments/whisper/audio/transcriptions?api-version=2024-02-01", body, hdr)
	var text struct{ Text string }
	decode(t, res.Body.Bytes(), &text)
	if res.Code != 200 || text.Text == "" {
		t.Fatalf("transcription: got %d %s", res.Code, res.Body)
	}
	body, hdr = form(map[string]string{"model": "whisper", "response_format": "text"}, true)
	res = serve(t, s, "POST", "/v1/audio/translations", body, hdr)
	if res.Code != 200 || !strings.HasPrefix(res.Header().Get("Content-Type"), "text/plain") ||
		strings.TrimSpace(res.Body.String()) != text.Text {
		t.Errorf("text translation: got %d %q, want %q", res.Code, res.Body, text.Text)
	}
	body, hdr = form(map[string]string{"model": "whisper", "response_format": "verbose_json"}, true)
	res = serve(t, s, "POST", "/v1/audio/transcriptions", body, hdr)
	var verbose struct {
		Task     string
		Duration float64
		Text     string
	}
	decode(t, res.Body.Bytes(), &verbose)
	if verbose.Task != "transcribe" || verbose.Duration != 2 || verbose.Text != text.Text {
		t.Errorf("verbose: got %s", res.Body)
	}
	body, hdr = form(map[string]string{"model": "whisper"}, false)
	if res = serve(t, s, "POST", "/v1/audio/transcriptions", body, hdr); res.Code != 400 {
		t.Errorf("no file: got %d, want 400", res.Code)
	}
	if res = serve(t, s, "POST", "/v1/audio/transcriptions", `{"model":"w"}`, nil); res.Code != 400 {
		t.Errorf("JSON audio: got %d, want 400", res.Code)
	}

	res = serve(t, s, "POST", "/openai/deployments/dalle/images/generations?api-version=2024-02-01",
		`{"prompt":"a cat","response_format":"b64_json"}`, nil)
	var img struct {
		Created int64
		Data    []struct {
			URL     string `json:"url"`
			B64JSON string `json:"b64_json"`
		}
	}
	decode(t, res.Body.Bytes(), &img)
	if img.Created == 0 || len(img.Data) != 1 || img.Data[0].B64JSON == "" {
		t.Errorf("images: got %s", res.Body)
	}
	res = serve(t, s, "POST", "/v1/images/generations", `{"model":"dalle","prompt":"a cat","n":2}`, nil)
	decode(t, res.Body.Bytes(), &img)
	if len(img.Data) != 2 || !strings.HasPrefix(img.Data[1].URL, "https://") {
		t.Errorf("image urls: got %s", res.Body)
	}
}

func TestHeadersAndModels(t *testing.T) {
	t.Parallel()
	s := New(Options{Region: "swedencentral"})
	res := serve(t, s, "POST", chatPath("d"), chatBody("hi", 0, false), http.Header{"X-Ms-Client-Request-Id": {"abc"}})
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	h := res.Header()
	if !uuid.MatchString(h.Get("apim-request-id")) || h.Get("x-request-id") != h.Get("apim-request-id") {
		t.Errorf("request ids: got %q %q", h.Get("apim-request-id"), h.Get("x-request-id"))
	}
	if h.Get("x-ms-region") != "swedencentral" || h.Get("x-ms-client-request-id") != "abc" {
		t.Errorf("region, client id: got %q %q", h.Get("x-ms-region"), h.Get("x-ms-client-request-id"))
	}
	if other := serve(t, s, "POST", chatPath("d"), chatBody("hi", 0, false), nil); other.Header().Get("x-request-id") == h.Get("x-request-id") {
		t.Error("two requests got the same id")
	}
	for _, path := range []string{"/v1/models", "/openai/v1/models", "/openai/models"} {
		res := serve(t, s, "GET", path, "", nil)
		var list struct {
			Object string
			Data   []struct{ ID, Object string }
		}
		decode(t, res.Body.Bytes(), &list)
		if res.Code != 200 || list.Object != "list" || len(list.Data) == 0 || list.Data[0].Object != "model" {
			t.Errorf("%s: got %d %s", path, res.Code, res.Body)
		}
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	ts := newHTTPServer(t, New(Options{TTFT: 40 * time.Millisecond, TokenInterval: 10 * time.Millisecond}))
	start := time.Now()
	resp, err := post(t, ts.Client(), ts.URL+chatPath("d"), chatBody("[[tokens:4]]", 0, false))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("non-streamed: answered after %v, want at least ttft + 4 × interval = 80ms", d)
	}
	start = time.Now()
	resp, err = post(t, ts.Client(), ts.URL+"/v1/chat/completions", `{"model":"d","stream":true,"messages":[{"role":"user","content":"[[tokens:4]]"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if d := time.Since(start); d > 35*time.Millisecond {
		t.Logf("stream headers after %v (expected before the first token)", d)
	}
	events, err := readSSE(resp.Body)
	if err != nil || len(events) != 6 || events[5] != "[DONE]" { // 4 tokens, the finish chunk, [DONE]
		t.Fatalf("events: got %q, %v", events, err)
	}
	if d := time.Since(start); d < 70*time.Millisecond {
		t.Errorf("stream: done after %v, want at least ttft + 3 × interval = 70ms", d)
	}
}
