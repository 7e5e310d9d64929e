package demo

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmgate/llmgate/internal/logtest"
	"github.com/llmgate/llmgate/internal/sim"
)

func TestDemoAnswersAndFailsOver(t *testing.T) {
	ctx := context.Background()
	d, err := Start(ctx, Options{Listen: "127.0.0.1:0", TTFT: time.Millisecond, TokenInterval: time.Microsecond,
		RetryInterval: 10 * time.Millisecond, RetryDelta: 10 * time.Millisecond, RetryMax: 80 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	client := openai.NewClient(azure.WithEndpoint(d.URL, "2024-02-01"), azure.WithAPIKey(d.Key), azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
	})
	if err != nil {
		t.Fatalf("chat completion through the demo: %v", err)
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Message.Content == "" {
		t.Fatalf("empty answer: %+v", resp)
	}

	// Throttle one region: every request to it gets 429 with a short Retry-After.
	d.SE.SetFaults(sim.Faults{Fail429: 1, RetryAfter429: 300 * time.Millisecond})
	retried, served := 0, 0
	for range 40 {
		req, _ := http.NewRequest("POST", d.URL+"/openai/deployments/gpt-4/chat/completions?api-version=2024-02-01",
			strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
		req.Header.Set("api-key", d.Key)
		req.Header.Set("content-type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d with one region throttled; trail %q", res.StatusCode, res.Header.Get("X-Llmgate-Trail"))
		}
		served++
		if res.Header.Get("X-Llmgate-Attempts") != "1" {
			retried++
			if !strings.Contains(res.Header.Get("X-Llmgate-Trail"), "oai-se:429") || res.Header.Get("X-Llmgate-Backend") != "oai-fr" {
				t.Errorf("retried request: trail %q backend %q", res.Header.Get("X-Llmgate-Trail"), res.Header.Get("X-Llmgate-Backend"))
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if retried == 0 {
		t.Errorf("no request was served after a retry while oai-se was throttled (%d served)", served)
	}
	t.Logf("%d of %d requests served by oai-fr after oai-se answered 429", retried, served)
}

// TestDemoPrintsWorkingSimulatorCommands: the outage and fault commands the
// demo prints carry each simulator's key, and work as printed.
func TestDemoPrintsWorkingSimulatorCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"-listen", "127.0.0.1:0"}, out, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	re := regexp.MustCompile(`curl -s -X (POST|PUT) '?(http://[^' ]+)'? -H 'api-key: ([0-9a-f]+)'(?: -d '([^']*)')?`)
	var cmds [][]string
	for deadline := time.Now().Add(10 * time.Second); len(cmds) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cmds = re.FindAllStringSubmatch(out.String(), -1)
	}
	if len(cmds) != 2 {
		t.Fatalf("the demo printed %d simulator commands, want 2 (outage and faults):\n%s", len(cmds), out.String())
	}
	for _, c := range cmds {
		req, _ := http.NewRequest(c[1], c[2], strings.NewReader(c[4]))
		req.Header.Set("api-key", c[3])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Errorf("%s %s as printed: %d %s", c[1], c[2], res.StatusCode, body)
		}
	}
}
