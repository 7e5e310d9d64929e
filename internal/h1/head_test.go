package h1

import (
	"bufio"
	"bytes"
	"cmp"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzAppendHead: whatever the header names, values, Host and path, a head
// this transport agrees to write parses back (by the standard library's
// server-side parser) into exactly the request it was given: one request,
// the same headers, the body framed by our Content-Length. Nothing smuggled.
func FuzzAppendHead(f *testing.F) {
	f.Add("POST", "/openai/deployments/gpt-4o/chat/completions", "api-version=2024-02-01", "upstream.example:8080", "Content-Type", "application/json", "body")
	f.Add("GET", "/v1/models", "", "h", "X-A", "a\r\nX-B: b", "")
	f.Add("POST", "/a b", "x=1\r\n", "h\r\nX: y", "X\nY", "v", "x")
	f.Add("PUT", "/", "", "h", "Transfer-Encoding", "chunked", "0\r\n\r\nGET / HTTP/1.1\r\n\r\n")
	f.Fuzz(func(t *testing.T, method, path, rawQuery, host, name, value, body string) {
		if method != "GET" && method != "POST" && method != "PUT" {
			method = "POST"
		}
		req := &http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: "h", Path: path, RawQuery: rawQuery},
			Host: host, Header: http.Header{}, ContentLength: int64(len(body))}
		req.Header[name] = []string{value}
		if body != "" {
			req.Body = io.NopCloser(strings.NewReader(body))
		}
		b, inline, err := encode(nil, req)
		if err != nil {
			return // refused: nothing was written
		}
		if body != "" && !inline {
			t.Fatal("a small body was not inlined")
		}
		got, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("head %q does not parse: %v", b, err)
		}
		if got.Method != method || got.RequestURI != req.URL.RequestURI() {
			t.Fatalf("request line: %s %s, want %s %s", got.Method, got.RequestURI, method, req.URL.RequestURI())
		}
		gotBody, err := io.ReadAll(got.Body)
		if err != nil || string(gotBody) != body {
			t.Fatalf("body %q (%v), want %q", gotBody, err, body)
		}
		if want := cmp.Or(host, "h"); got.Host != want {
			t.Fatalf("Host %q, want %q", got.Host, want)
		}
		for k, vs := range got.Header {
			switch k {
			case "Content-Length":
				continue
			case http.CanonicalHeaderKey(name):
				want := strings.Trim(value, " \t")
				if !slices.Equal(vs, []string{want}) {
					t.Fatalf("%s: %q, want %q", k, vs, want)
				}
			default:
				t.Fatalf("header %q appeared from nowhere (head %q)", k, b)
			}
		}
	})
}
