package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler(6, 0, 0))
	t.Cleanup(srv.Close)
	cases := []struct {
		name       string
		body       string
		wantType   string
		wantEvents int
	}{
		{"completion", `{"messages":[]}`, "application/json", 0},
		{"stream", `{"messages":[],"stream":true}`, "text/event-stream", 6},
		{"stream with a space", `{"messages":[],"stream": true}`, "text/event-stream", 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Post(srv.URL+"/openai/deployments/x/chat/completions", "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Type"); got != c.wantType {
				t.Fatalf("got Content-Type %q, want %q", got, c.wantType)
			}
			if resp.Header.Get("X-Ratelimit-Remaining-Tokens") == "" {
				t.Errorf("got no x-ratelimit-remaining-tokens, want one")
			}
			if c.wantEvents == 0 {
				var v struct {
					Usage struct {
						TotalTokens int `json:"total_tokens"`
					} `json:"usage"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Usage.TotalTokens == 0 {
					t.Fatalf("got %+v, %v; want a completion with usage", v, err)
				}
				if resp.ContentLength != int64(len(completion)) {
					t.Errorf("got Content-Length %d, want %d", resp.ContentLength, len(completion))
				}
				return
			}
			var events []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					events = append(events, d)
				}
			}
			if len(events) != c.wantEvents || events[len(events)-1] != "[DONE]" {
				t.Fatalf("got %d events ending %q, want %d ending [DONE]", len(events), events[len(events)-1], c.wantEvents)
			}
			if usage := events[len(events)-2]; !strings.Contains(usage, `"choices":[],"usage":{`) {
				t.Errorf("got %s before [DONE], want the usage chunk", usage)
			}
		})
	}
}
