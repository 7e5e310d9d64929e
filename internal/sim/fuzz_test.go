package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzPaths are the routes FuzzRequestBody sends its body to, chosen by the fuzzed index.
var fuzzPaths = []string{
	"/openai/deployments/dep/chat/completions?api-version=2024-02-01",
	"/openai/deployments/dep/completions?api-version=2024-02-01",
	"/openai/deployments/dep/embeddings?api-version=2024-02-01",
	"/openai/deployments/dep/images/generations?api-version=2024-02-01",
	"/v1/chat/completions",
	"/v1/completions",
	"/v1/embeddings",
	"/openai/v1/images/generations",
	"/v1/audio/transcriptions",
	"/openai/deployments/dep/audio/translations?api-version=2024-02-01",
}

const fuzzBoundary = "fuzzboundary"

// FuzzRequestBody sends any body to every route: the simulator must never panic, must answer
// a known status, and everything it answers 200 must be valid JSON or valid SSE events.
func FuzzRequestBody(f *testing.F) {
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.SetBoundary(fuzzBoundary)
	_ = mw.WriteField("model", "whisper")
	_ = mw.WriteField("response_format", "verbose_json")
	fw, _ := mw.CreateFormFile("file", "a.wav")
	_, _ = fw.Write([]byte("RIFF....WAVE"))
	_ = mw.Close()
	for _, seed := range []struct {
		path uint8
		body string
	}{
		{0, `{"messages":[{"role":"user","content":"hello"}],"max_tokens":5}`},
		{0, `{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url"}]}],"stream":true,"n":3,"stream_options":{"include_usage":true}}`},
		{0, `{"messages":[{"role":"user","content":"[[tokens:0]] [[content_filter:completion]]"}],"stream":true}`},
		{1, `{"prompt":["a","b"],"best_of":2,"n":2,"stream":true}`},
		{1, `{"prompt":[[1,2],[3]],"max_tokens":1}`},
		{2, `{"input":["a",""],"dimensions":3,"encoding_format":"base64"}`},
		{2, `{"input":[1,2,3]}`},
		{3, `{"prompt":"cat","n":2,"response_format":"b64_json"}`},
		{4, `{"model":"ft:gpt-4o:org::x","messages":[{"role":"user","content":null}]}`},
		{4, `{"model":"a\"b","messages":[]}`},
		{5, `{"model":"m","prompt":"x","max_tokens":1048576}`},
		{6, `{"model":"m","input":"[[content_filter]]"}`},
		{7, `{"model":"m","prompt":7}`},
		{8, form.String()},
		{9, form.String()},
		{0, `{"messages":[{"role":"user","content":"w"}],"stream":true,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"array","items":{"enum":["x\"y",1]}},"b":{"anyOf":[{"type":"number"}]}}}}}]}`},
		{4, `{"model":"m","messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":["string","null"]}}},"n":2,"stream":true}`},
		{0, `{"messages":[{"role":"user","content":"json é"}],"stream":true,"n":2,"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"$defs":{"N":{"type":"object","properties":{"n":{"$ref":"#/$defs/N"},"s":{"const":"東京"}},"required":["n"]}},"$ref":"#/$defs/N"}}}}`},
		{0, `{"messages":[{"role":"user","content":"x"}],"functions":[{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer","minimum":5,"maximum":3}}}}],"function_call":{"name":"f"},"stream":true}`},
		{0, `not json`},
		{0, ``},
	} {
		f.Add(seed.path, []byte(seed.body))
	}
	s := New(Options{Seed: 1})
	f.Fuzz(func(t *testing.T, path uint8, body []byte) {
		target := fuzzPaths[int(path)%len(fuzzPaths)]
		hdr := http.Header{"Content-Type": {"application/json"}}
		if strings.Contains(target, "/audio/") {
			hdr.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		}
		res := serve(t, s, http.MethodPost, target, string(body), hdr)
		if res.aborted {
			t.Fatal("aborted without a fault")
		}
		switch res.Code {
		case 200, 400, 404, 413:
		default:
			t.Fatalf("status %d for %q", res.Code, body)
		}
		out := res.Body.Bytes()
		switch ct := res.Header().Get("Content-Type"); {
		case ct == "application/json":
			if !json.Valid(out) {
				t.Fatalf("invalid JSON answer %q", out)
			}
		case ct == "text/event-stream":
			checkSSE(t, out)
		case res.Code != 200 || !strings.HasPrefix(ct, "text/"):
			t.Fatalf("status %d with Content-Type %q", res.Code, ct)
		}
	})
}

// checkSSE fails unless out is a sequence of "data: <JSON>\n\n" events ending with [DONE].
func checkSSE(t *testing.T, out []byte) {
	t.Helper()
	events := strings.Split(string(out), "\n\n")
	if len(events) < 2 || events[len(events)-1] != "" || events[len(events)-2] != "data: [DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", out)
	}
	for _, e := range events[:len(events)-2] {
		data, ok := strings.CutPrefix(e, "data: ")
		if !ok || !json.Valid([]byte(data)) {
			t.Fatalf("invalid event %q", e)
		}
	}
}

// FuzzParseSpan: parseSpan never panics, agrees with time.ParseDuration on what it accepts,
// reads any other accepted text as that many seconds, and reads back what a duration prints.
func FuzzParseSpan(f *testing.F) {
	for _, seed := range []string{"10", "1.5", ".25", "-1", "+3.", "10s", "1m30s", "0", "", ".", "-",
		"1e3", "NaN", "Inf", "0x10", "1_000", "9223372036", "9223372037", "2562047h47m16.854775807s"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseSpan(s)
		if err != nil {
			return
		}
		if want, perr := time.ParseDuration(s); perr == nil {
			if d != want {
				t.Fatalf("parseSpan(%q) = %v, time.ParseDuration says %v", s, d, want)
			}
		} else {
			if !isDecimal(s) {
				t.Fatalf("parseSpan(%q) = %v, accepted text that is neither a duration nor decimal", s, d)
			}
			secs, perr := strconv.ParseFloat(s, 64)
			if perr != nil || math.Abs(float64(d)-secs*float64(time.Second)) > math.Max(1, math.Abs(secs)) {
				t.Fatalf("parseSpan(%q) = %v, want %v seconds", s, d, secs)
			}
		}
		if back, err := parseSpan(d.String()); err != nil || back != d {
			t.Fatalf("parseSpan(%q) = %v, which reads back as %v, %v", s, d, back, err)
		}
	})
}
