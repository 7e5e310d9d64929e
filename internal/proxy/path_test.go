package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/provider"
)

func TestParsePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path  string
		style provider.Style
		dep   string
		op    string
		ok    bool
	}{
		{"/openai/deployments/gpt-4/chat/completions", provider.Azure, "gpt-4", "/chat/completions", true},
		{"/openai/deployments/gpt-4", provider.Azure, "gpt-4", "", true},
		{"/openai/deployments/", 0, "", "", false},
		{"/openai/v1/chat/completions", provider.AzureV1, "", "/chat/completions", true},
		{"/openai/assistants", provider.AzureOther, "", "/openai/assistants", true},
		{"/v1/embeddings", provider.OpenAI, "", "/embeddings", true},
		{"/v2/embeddings", 0, "", "", false},
		{"/", 0, "", "", false},
	}
	for _, tt := range tests {
		style, dep, op, ok := parsePath(tt.path)
		if ok != tt.ok || (ok && (style != tt.style || dep != tt.dep || op != tt.op)) {
			t.Errorf("parsePath(%q) = %v %q %q %v", tt.path, style, dep, op, ok)
		}
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"/openai/deployments/gpt-4/chat/completions":       true,
		"/openai/deployments/../admin":                     false,
		"/openai/deployments/a/./b":                        false,
		"/openai/deployments/a%2Fb/chat/completions":       false,
		"/openai/deployments/a%2fb/chat/completions":       false,
		"/openai/deployments/a%5Cb/chat/completions":       false,
		"/openai/deployments/%2e%2e/chat/completions":      false,
		"/openai//deployments/x":                           false,
		"/openai/deployments/" + strings.Repeat("a", 3000): false,
		"/openai/deployments/gpt%204/chat/completions":     true,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := cleanPath(u); got != want {
			t.Errorf("cleanPath(%q) = %v, want %v", raw, got, want)
		}
	}
}

// FuzzRouting feeds arbitrary request paths to the path checks and parser:
// no panic, and an accepted path never yields a deployment name with a
// slash, a dot segment or a control character.
func FuzzRouting(f *testing.F) {
	for _, s := range []string{"/openai/deployments/gpt-4/chat/completions", "/openai/deployments/..%2f/x",
		"/v1/chat/completions", "/openai/v1/models", "/openai/deployments/a%00b/x", "/openai/deployments/" + strings.Repeat("x", 300) + "/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if !cleanPath(u) {
			return
		}
		_, dep, _, ok := parsePath(u.Path)
		if !ok {
			return
		}
		if strings.ContainsAny(dep, "/\\\x00") || dep == ".." || dep == "." || len(dep) > 256 {
			t.Fatalf("path %q accepted with deployment %q", raw, dep)
		}
	})
}
