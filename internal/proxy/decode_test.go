package proxy

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"testing"
)

// FuzzDecodeBody: whatever a client sends as a compressed body, decoding
// never panics, never returns more than the limit, and either succeeds or
// names a status and a code; a gzip of a body within the limit decodes to
// it.
func FuzzDecodeBody(f *testing.F) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"model":"gpt-4o"}`))
	zw.Close()
	f.Add("gzip", gz.Bytes())
	f.Add("deflate", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	f.Add("br", []byte("x"))
	f.Add("GZIP ", gz.Bytes()[:10])
	f.Fuzz(func(t *testing.T, encoding string, body []byte) {
		const max = 1 << 16
		plain, status, code, msg := decodeBody(encoding, body, max)
		switch {
		case status == 0 && (code != "" || len(plain) > max):
			t.Fatalf("%q: ok with code %q, %d bytes", encoding, code, len(plain))
		case status != 0 && (plain != nil || code == "" || msg == ""):
			t.Fatalf("%q: status %d, code %q, msg %q, %d bytes", encoding, status, code, msg, len(plain))
		case status != 0 && status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge && status != http.StatusUnsupportedMediaType:
			t.Fatalf("%q: status %d", encoding, status)
		}
		if len(body) <= max {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write(body)
			w.Close()
			if got, status, _, _ := decodeBody("gzip", b.Bytes(), max); status != 0 || !bytes.Equal(got, body) {
				t.Fatalf("gzip of %d bytes: status %d, %d bytes back", len(body), status, len(got))
			}
		}
	})
}
