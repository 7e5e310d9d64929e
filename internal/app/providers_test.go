package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/sim"
)

// simUpstream starts a simulator that requires key, and records the paths
// and models it was asked for.
type simUpstream struct {
	srv  *httptest.Server
	sim  *sim.Server
	mu   sync.Mutex
	seen []string // "path model"
}

func startSim(t *testing.T, key string) *simUpstream {
	t.Helper()
	u := &simUpstream{sim: sim.New(sim.Options{Key: key, Seed: 7})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &m)
		u.mu.Lock()
		u.seen = append(u.seen, r.URL.Path+" "+m.Model)
		u.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		u.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { u.srv.Close(); u.sim.Close() })
	return u
}

func (u *simUpstream) calls() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func gatewayFrom(t *testing.T, yaml string, env map[string]string) string {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := servePlain(t, a)
	t.Cleanup(srv.Close)
	return srv.URL
}

func clients(gw, key string) map[string]openai.Client {
	return map[string]openai.Client{
		"openai-style": openai.NewClient(option.WithBaseURL(gw+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0)),
		"azure-style": openai.NewClient(azure.WithEndpoint(gw, "2024-02-01"), azure.WithAPIKey(key),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0)),
	}
}

func chatBoth(t *testing.T, c openai.Client, model string) {
	t.Helper()
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")}
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model, Messages: msgs, MaxTokens: openai.Int(8)})
	if err != nil {
		t.Fatalf("plain: %v", err)
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
		t.Fatalf("plain: empty answer %+v", resp)
	}
	st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: model, Messages: msgs, MaxTokens: openai.Int(8),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Choices) == 0 || acc.Choices[0].Message.Content == "" || acc.Usage.TotalTokens == 0 {
		t.Fatalf("stream: empty answer %+v", acc.ChatCompletion)
	}
	// Function calling, plain and streamed: the call comes through whole.
	tools := openai.ChatCompletionNewParams{Model: model, Messages: msgs, Tools: []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "greet", Parameters: shared.FunctionParameters{
			"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}}),
	}, ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}}
	resp, err = c.Chat.Completions.New(ctx, tools)
	if err != nil || len(resp.Choices) == 0 || len(resp.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("tools: %v %+v, want a tool call", err, resp)
	}
	call := resp.Choices[0].Message.ToolCalls[0]
	st = c.Chat.Completions.NewStreaming(ctx, tools)
	acc = openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil || len(acc.Choices) == 0 || len(acc.Choices[0].Message.ToolCalls) != 1 ||
		acc.Choices[0].Message.ToolCalls[0].Function.Arguments != call.Function.Arguments || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tools streamed: %v %+v, want the call %+v", err, acc.ChatCompletion, call)
	}
}

// TestBothClientStylesOverBothBackendTypes drives the gateway with openai-go
// in OpenAI style and Azure style, plain and streaming, with and without tools, against an Azure-type
// upstream and an OpenAI-type upstream (the simulator's /v1 mode), with the
// model name mapped to each upstream's own name.
func TestBothClientStylesOverBothBackendTypes(t *testing.T) {
	for _, typ := range []string{"azure", "openai"} {
		t.Run(typ, func(t *testing.T) {
			up := startSim(t, "upstream-key")
			url := up.srv.URL
			if typ == "openai" {
				url += "/v1"
			}
			gw := gatewayFrom(t, fmt.Sprintf(`
keys: [{name: app, key: client-key}]
aliases: {gpt-4o: gpt-4o-2024-08-06}
backends:
  - name: up
    type: %s
    url: %s
    api_key: ${UP_KEY}
    deployments: {gpt-4o-2024-08-06: prod-gpt4o}
`, typ, url), map[string]string{"UP_KEY": "upstream-key"})
			for style, c := range clients(gw, "client-key") {
				t.Run(style, func(t *testing.T) { chatBoth(t, c, "gpt-4o") })
			}
			for _, call := range up.calls() {
				switch typ {
				case "azure":
					if !strings.HasPrefix(call, "/openai/deployments/prod-gpt4o/chat/completions") {
						t.Errorf("azure upstream got %q, want the deployment path with the mapped name", call)
					}
				case "openai":
					if call != "/v1/chat/completions prod-gpt4o" {
						t.Errorf("openai upstream got %q, want /v1/chat/completions with model prod-gpt4o", call)
					}
				}
			}
			if n := len(up.calls()); n != 8 { // 2 styles × plain, stream, tools, tools streamed
				t.Errorf("upstream calls = %d, want 8", n)
			}
		})
	}
}

// TestMixedRouteFailsOverAcrossTypes puts an Azure-type and an OpenAI-type
// backend in one route; the Azure one is down, so every request, from both
// client styles, fails over to the OpenAI one.
func TestMixedRouteFailsOverAcrossTypes(t *testing.T) {
	azureUp := startSim(t, "az-key")
	oaiUp := startSim(t, "oai-key")
	azureUp.sim.SetFaults(sim.Faults{Fail503: 1})
	gw := gatewayFrom(t, fmt.Sprintf(`
keys: [{name: app, key: client-key}]
retry: {count: 2, interval: 1ms}
backends:
  - name: az
    url: %s
    api_key: az-key
    weight: 1000
  - name: oai
    type: openai
    url: %s/v1
    api_key: oai-key
    weight: 1
`, azureUp.srv.URL, oaiUp.srv.URL), nil)
	for style, c := range clients(gw, "client-key") {
		t.Run(style, func(t *testing.T) { chatBoth(t, c, "gpt-4o") })
	}
	if len(oaiUp.calls()) != 8 {
		t.Errorf("openai backend served %d requests, want all 8", len(oaiUp.calls()))
	}
}

// TestModelsListShowsWhatTheKeyMayUse checks GET /v1/models per key, and the
// 403 for a model a key may not use.
func TestModelsListShowsWhatTheKeyMayUse(t *testing.T) {
	up := startSim(t, "k")
	gw := gatewayFrom(t, fmt.Sprintf(`
keys:
  - {name: all, key: key-all}
  - {name: some, key: key-some, models: [gpt-4o, text-embedding-3-small]}
aliases: {gpt-4o: gpt-4o-2024-08-06, ghost: nothing}
backends:
  - name: up
    url: %s
    api_key: k
    deployments: {gpt-4o-2024-08-06: gpt-4o-2024-08-06, text-embedding-3-small: emb, gpt-35-turbo: gpt-35-turbo}
`, up.srv.URL), nil)
	ids := func(key string) []string {
		c := openai.NewClient(option.WithBaseURL(gw+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		page, err := c.Models.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range page.Data {
			out = append(out, m.ID)
		}
		sort.Strings(out)
		return out
	}
	if got, want := strings.Join(ids("key-all"), ","), "gpt-35-turbo,gpt-4o,gpt-4o-2024-08-06,text-embedding-3-small"; got != want {
		t.Errorf("models for key all = %s, want %s", got, want)
	}
	if got, want := strings.Join(ids("key-some"), ","), "gpt-4o,text-embedding-3-small"; got != want {
		t.Errorf("models for key some = %s, want %s", got, want)
	}
	// The same list through the SDK's Azure options (GET /openai/models):
	// the gateway answers it, never a backend with its whole catalogue.
	c := openai.NewClient(azure.WithEndpoint(gw, "2024-10-21"), azure.WithAPIKey("key-some"), azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var azureIDs []string
	for _, m := range page.Data {
		azureIDs = append(azureIDs, m.ID)
	}
	sort.Strings(azureIDs)
	if got, want := strings.Join(azureIDs, ","), "gpt-4o,text-embedding-3-small"; got != want {
		t.Errorf("models for key some, Azure options = %s, want %s", got, want)
	}
	if m, err := c.Models.Get(context.Background(), "text-embedding-3-small"); err != nil || m.ID != "text-embedding-3-small" {
		t.Errorf("Models.Get with Azure options: got %+v, %v", m, err)
	}
	for _, path := range []string{"/v1/models", "/v1/models/gpt-4o"} {
		if res, _ := bearerCall(t, http.MethodHead, gw+path, "key-some", ""); res.StatusCode != 200 {
			t.Errorf("HEAD %s: got %d, want 200", path, res.StatusCode)
		}
	}

	// Retrieve a model (the SDK's Models.Get): answered from the same list.
	some := openai.NewClient(option.WithBaseURL(gw+"/v1/"), option.WithAPIKey("key-some"), option.WithMaxRetries(0))
	if m, err := some.Models.Get(context.Background(), "gpt-4o"); err != nil || m.ID != "gpt-4o" {
		t.Errorf("Models.Get(gpt-4o) for key some: got %+v, %v", m, err)
	}
	var apiErr *openai.Error
	if _, err := some.Models.Get(context.Background(), "gpt-35-turbo"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("Models.Get(gpt-35-turbo) for key some: got %v, want 404 model_not_found", err)
	}
	// A /v1 or /openai/v1 request to run a model naming none: 400, and no
	// backend is called (nor is the key's model list got around).
	for _, path := range []string{"/v1/chat/completions", "/openai/v1/chat/completions", "/openai/v1/embeddings"} {
		res0, body0 := bearerCall(t, http.MethodPost, gw+path, "key-some", `{"messages":[{"role":"user","content":"hi"}]}`)
		if res0.StatusCode != http.StatusBadRequest || !strings.Contains(string(body0), `"code":"missing_model"`) {
			t.Errorf("%s, no model: %d %s, want 400 missing_model", path, res0.StatusCode, body0)
		}
	}
	res, body := bearerCall(t, http.MethodPost, gw+"/v1/chat/completions", "key-some", `{"model":"gpt-35-turbo","messages":[]}`)
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"code":"model_not_allowed"`) {
		t.Errorf("forbidden model: %d %s", res.StatusCode, body)
	}
	if len(up.calls()) != 0 {
		t.Errorf("a refused request reached the upstream: %v", up.calls())
	}
}

// tokenServer is a local OAuth2 token endpoint that issues expiring tokens
// and counts requests.
type tokenServer struct {
	srv      *httptest.Server
	requests atomic.Int64
	ttl      atomic.Int64 // seconds
	fail     atomic.Bool
	delay    time.Duration
}

func startTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{delay: 50 * time.Millisecond}
	ts.ttl.Store(3600)
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.requests.Add(1)
		time.Sleep(ts.delay)
		_ = r.ParseForm()
		if ts.fail.Load() || r.URL.Path != "/tenant-1/oauth2/v2.0/token" || r.PostForm.Get("client_id") != "cid" ||
			r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "https://cognitiveservices.azure.com/.default" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		if r.PostForm.Get("client_secret") != "csecret" && r.PostForm.Get("client_assertion") != "federated-jwt" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "expires_in": ts.ttl.Load(), "token_type": "Bearer"})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

// bearerUpstream answers 200 and records the bearer tokens it saw.
func bearerUpstream(t *testing.T) (*httptest.Server, func() map[string]int) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		if r.Header.Get("Api-Key") != "" {
			t.Errorf("api-key sent with entra auth")
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[]}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

func entraGateway(t *testing.T, authority, upstream, extra string) string {
	return gatewayFrom(t, fmt.Sprintf(`
keys: [{name: app, key: client-key}]
retry: {count: 0}
backends:
  - name: aad
    url: %s
    auth: entra
    entra:
      tenant_id: tenant-1
      client_id: cid
      authority: %s
%s
`, upstream, authority, extra), nil)
}

func post(t *testing.T, gw string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", gw+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01", strings.NewReader(`{"messages":[]}`))
	req.Header.Set("api-key", "client-key")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b)
}

func TestEntraOneFetchUnderConcurrency(t *testing.T) {
	ts := startTokenServer(t)
	up, seen := bearerUpstream(t)
	gw := entraGateway(t, ts.srv.URL, up.URL, "      client_secret: csecret")
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if st, body := post(t, gw); st != 200 {
				t.Errorf("status %d: %s", st, body)
			}
		})
	}
	wg.Wait()
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("token requests under 100 concurrent requests = %d, want 1", n)
	}
	if s := seen(); s["Bearer tok-1"] != 100 || len(s) != 1 {
		t.Errorf("upstream saw %v, want 100 × Bearer tok-1", s)
	}
	// Cached: more requests, no more fetches.
	for range 10 {
		post(t, gw)
	}
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("token requests after 110 requests = %d, want 1 (cached)", n)
	}
}

func TestEntraRefreshesBeforeExpiry(t *testing.T) {
	ts := startTokenServer(t)
	ts.ttl.Store(2) // refresh is due at once: the valid token keeps serving meanwhile
	up, seen := bearerUpstream(t)
	dir := t.TempDir()
	file := dir + "/token"
	if err := writeFile(file, "federated-jwt\n"); err != nil {
		t.Fatal(err)
	}
	gw := entraGateway(t, ts.srv.URL, up.URL, "      federated_token_file: "+file)
	if st, body := post(t, gw); st != 200 {
		t.Fatalf("status %d: %s", st, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.requests.Load() < 2 && time.Now().Before(deadline) {
		if st, _ := post(t, gw); st != 200 {
			t.Fatalf("a request failed while the token was being refreshed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ts.requests.Load() < 2 {
		t.Fatal("token never refreshed before expiry")
	}
	time.Sleep(100 * time.Millisecond)
	post(t, gw)
	if s := seen(); s["Bearer tok-2"] == 0 {
		t.Errorf("refreshed token not used: %v", s)
	}
}

func TestEntraFailureIsAClearError(t *testing.T) {
	ts := startTokenServer(t)
	ts.fail.Store(true)
	up, seen := bearerUpstream(t)
	gw := entraGateway(t, ts.srv.URL, up.URL, "      client_secret: csecret")
	start := time.Now()
	st, body := post(t, gw)
	if st != http.StatusBadGateway || !strings.Contains(body, "backend aad") || !strings.Contains(body, "backend_credential_unavailable") {
		t.Errorf("got %d %s, want 502 naming backend aad", st, body)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("token failure took %v", time.Since(start))
	}
	if len(seen()) != 0 {
		t.Errorf("upstream called without a token: %v", seen())
	}
	// A token endpoint that is unreachable fails just as clearly.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	gw2 := entraGateway(t, closed.URL, up.URL, "      client_secret: csecret")
	if st, body := post(t, gw2); st != http.StatusBadGateway || !strings.Contains(body, "backend aad") {
		t.Errorf("unreachable authority: %d %s", st, body)
	}
}

// TestEntraFailureIsNotAStampede: while the token endpoint fails, requests
// get the last failure's error at once instead of one fetch each; the
// endpoint is asked again after a short wait, and a token it then gives is
// used.
func TestEntraFailureIsNotAStampede(t *testing.T) {
	ts := startTokenServer(t)
	ts.fail.Store(true)
	up, seen := bearerUpstream(t)
	gw := entraGateway(t, ts.srv.URL, up.URL, "      client_secret: csecret")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if st, body := post(t, gw); st != http.StatusBadGateway || !strings.Contains(body, "backend aad") {
				t.Errorf("got %d %s, want 502 naming backend aad", st, body)
			}
		})
	}
	wg.Wait()
	for range 50 {
		if st, _ := post(t, gw); st != http.StatusBadGateway {
			t.Fatalf("got %d, want 502", st)
		}
	}
	// 100 requests, one after another for the last 50: one fetch (a second
	// if the machine took over a second for them).
	if n := ts.requests.Load(); n > 2 {
		t.Errorf("token requests for 100 requests while the endpoint fails = %d, want 1 (2 at most)", n)
	}
	ts.fail.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := post(t, gw)
		if st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no token fetched again within 5 s of the endpoint's recovery")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := seen(); len(s) != 1 {
		t.Errorf("upstream saw %v, want only the new token", s)
	}
}

func writeFile(name, s string) error {
	return os.WriteFile(name, []byte(s), 0o600)
}
