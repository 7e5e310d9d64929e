package reqbody

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"testing"
)

func TestSetString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in string }{
		{`{"model":"a","x":1}`},
		{`{"x":{"model":"a"}, "model" : "a" }`},
		{`{"x":1}`},
		{`{}`},
		{` { } `},
	} {
		got, err := SetString([]byte(tc.in), "model", "b")
		if err != nil {
			t.Fatalf("SetString(%s): %v", tc.in, err)
		}
		if !json.Valid(got) {
			t.Errorf("SetString(%s) = %s: invalid JSON", tc.in, got)
		}
		var m map[string]any
		_ = json.Unmarshal(got, &m)
		if m["model"] != "b" {
			t.Errorf("SetString(%s) = %s", tc.in, got)
		}
	}
	if _, err := SetString([]byte(`[1]`), "model", "b"); err == nil {
		t.Error("non-object accepted")
	}
}

func multipartBody(t *testing.T, model string, file []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("file", "a.wav")
	_, _ = fw.Write(file)
	if model != "" {
		_ = mw.WriteField("model", model)
	}
	_ = mw.WriteField("language", "en")
	_ = mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func TestMultipartModel(t *testing.T) {
	t.Parallel()
	file := bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n', '-', '-'}, 1000)
	body, ct := multipartBody(t, "whisper", file)
	v, ok, err := MultipartField(body, ct, "model")
	if err != nil || !ok || v != "whisper" {
		t.Fatalf("MultipartField = %q, %v, %v", v, ok, err)
	}
	out, err := SetMultipartField(body, ct, "model", "whisper-1")
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(out), mustBoundary(t, ct))
	form, err := mr.ReadForm(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if form.Value["model"][0] != "whisper-1" || form.Value["language"][0] != "en" {
		t.Errorf("fields: %v", form.Value)
	}
	f, _ := form.File["file"][0].Open()
	var got bytes.Buffer
	_, _ = got.ReadFrom(f)
	if !bytes.Equal(got.Bytes(), file) {
		t.Error("file part changed")
	}
	if _, ok, _ := MultipartField(body, "application/json", "model"); ok {
		t.Error("non-multipart content type accepted")
	}
}

func mustBoundary(t *testing.T, ct string) string {
	t.Helper()
	b, err := boundary(ct)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzMultipartField(f *testing.F) {
	body, ct := multipartBody(&testing.T{}, "m", []byte("abc"))
	f.Add(body, ct)
	f.Add([]byte("--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--x--\r\n"), "multipart/form-data; boundary=x")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		_, _, _ = MultipartField(body, ct, "model")
		_, _ = SetMultipartField(body, ct, "model", "x")
	})
}

func FuzzSetString(f *testing.F) {
	f.Add([]byte(`{"model":"a"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := SetString(b, "model", "z")
		if err == nil && json.Valid(b) && !json.Valid(out) {
			t.Fatalf("SetString(%q) = %q: invalid JSON", b, out)
		}
	})
}
