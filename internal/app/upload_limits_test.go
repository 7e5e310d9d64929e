package app_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"testing"

	"github.com/llmgate/llmgate/internal/sim"
)

// An audio upload is no prompt text: a key's tpm does not count its bytes
// as tokens (12 KB of audio would be ~3 000 "tokens", over this key's tpm
// for ever), while rpm still counts the request.
func TestUploadBytesAreNoTokens(t *testing.T) {
	up := simServer(t, sim.Options{})
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret, tpm: 2000, rpm: 100}"))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("model", "whisper")
	fw, _ := mw.CreateFormFile("file", "a.wav")
	_, _ = fw.Write(bytes.Repeat([]byte{0x52}, 12<<10))
	_ = mw.Close()
	for i := range 3 {
		req, _ := http.NewRequest("POST", g.URL+"/v1/audio/transcriptions", bytes.NewReader(body.Bytes()))
		req.Header.Set("Authorization", "Bearer team-secret")
		req.Header.Set("Content-Type", mw.FormDataContentType())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("upload %d: %d %s, want 200 (its bytes are no tokens)", i, res.StatusCode, b)
		}
		if rem, _ := strconv.Atoi(res.Header.Get("X-Ratelimit-Remaining-Tokens")); rem != 2000 {
			t.Errorf("upload %d: remaining tokens %q, want 2000", i, res.Header.Get("X-Ratelimit-Remaining-Tokens"))
		}
		if res.Header.Get("X-Ratelimit-Limit-Tokens") != "2000" || res.Header.Get("X-Ratelimit-Limit-Requests") != "100" {
			t.Errorf("upload %d: limit headers %q / %q, want the key's 2000 / 100", i,
				res.Header.Get("X-Ratelimit-Limit-Tokens"), res.Header.Get("X-Ratelimit-Limit-Requests"))
		}
		if rem, _ := strconv.Atoi(res.Header.Get("X-Ratelimit-Remaining-Requests")); rem != 99-i {
			t.Errorf("upload %d: remaining requests %q, want %d", i, res.Header.Get("X-Ratelimit-Remaining-Requests"), 99-i)
		}
	}
}

// A request larger than its key's whole tpm can never be admitted: the 429
// says so, and x-should-retry: false keeps SDKs from retrying it.
func TestRequestLargerThanKeyTPMIsToldSo(t *testing.T) {
	up := simServer(t, sim.Options{})
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret, tpm: 1000}"))
	res, body := chatCall(t, g.URL, "team-secret", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4000}`)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("X-Should-Retry") != "false" ||
		!bytes.Contains([]byte(body), []byte("can never be admitted")) {
		t.Errorf("got %d, x-should-retry %q, %s; want 429 saying it can never be admitted, x-should-retry false",
			res.StatusCode, res.Header.Get("X-Should-Retry"), body)
	}
	if res, _ := chatCall(t, g.URL, "team-secret", smallChat); res.StatusCode != http.StatusOK {
		t.Errorf("a small request after it: %d, want 200 (the refused one charged nothing)", res.StatusCode)
	}
}

// Each choice a request asks for (n, best_of) may use its max_tokens, as
// Azure counts it: 4 × 300 is over a tpm of 1000, where 300 alone is not.
func TestEachChoiceCountsAtAdmission(t *testing.T) {
	up := simServer(t, sim.Options{})
	g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret, tpm: 1000}"))
	res, body := chatCall(t, g.URL, "team-secret", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":300,"n":4}`)
	if res.StatusCode != http.StatusTooManyRequests || !bytes.Contains([]byte(body), []byte("can never be admitted")) {
		t.Errorf("n=4 × max_tokens 300 under tpm 1000: got %d %s, want 429 saying it can never be admitted", res.StatusCode, body)
	}
	if res, body := chatCall(t, g.URL, "team-secret", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":300,"n":1}`); res.StatusCode != http.StatusOK {
		t.Errorf("n=1: got %d %s, want 200", res.StatusCode, body)
	}
}

// The key's remaining tokens are shown with the limit they are what is
// left of: the daily quota when it leaves less than tpm (or is the only
// token limit), never the upstream's limit beside the key's remaining.
func TestRemainingTokensComeWithTheirOwnLimit(t *testing.T) {
	up := simServer(t, sim.Options{})
	for _, tc := range []struct{ limits, want string }{
		{"daily_tokens: 600", "600"},
		{"tpm: 100000, daily_tokens: 600", "600"},
		{"tpm: 900, daily_tokens: 100000", "900"},
	} {
		g := serveGateway(t, keysYAML("{type: memory}", up.URL, "  - {name: team, key: team-secret, "+tc.limits+"}"))
		res, body := chatCall(t, g.URL, "team-secret", smallChat)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.limits, res.StatusCode, body)
		}
		rem, _ := strconv.Atoi(res.Header.Get("X-Ratelimit-Remaining-Tokens"))
		if got := res.Header.Get("X-Ratelimit-Limit-Tokens"); got != tc.want || rem <= 0 || rem > 900 {
			t.Errorf("%s: limit %q remaining %d, want limit %s with the remaining of it", tc.limits, got, rem, tc.want)
		}
	}
}
