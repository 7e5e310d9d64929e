package apiop

import "testing"

func TestLabel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/chat/completions": "chat/completions", "embeddings": "embeddings", "/responses": "responses",
		"/models": "models", "/files/x": Other, "": Other, "/chat/completions/x": Other,
	} {
		if got := Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
	if !RunsModel("/chat/completions") || !RunsModel("/audio/speech") || RunsModel("/models") || RunsModel("/files") {
		t.Error("RunsModel: wrong for chat, speech, models or files")
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path          string
		style         int
		deployment, o string
		ok            bool
	}{
		{"/openai/deployments/gpt-4o/chat/completions", Deployments, "gpt-4o", "/chat/completions", true},
		{"/openai/deployments/gpt-4o", Deployments, "gpt-4o", "", true},
		{"/openai/v1/chat/completions", AzureV1, "", "/chat/completions", true},
		{"/v1/models/gpt-4o", V1, "", "/models/gpt-4o", true},
		{"/openai/models", Azure, "", "/models", true},
		{"/healthz", 0, "", "", false},
	} {
		style, dep, op, ok := Split(tc.path)
		if style != tc.style || dep != tc.deployment || op != tc.o || ok != tc.ok {
			t.Errorf("Split(%q) = %d %q %q %v, want %d %q %q %v", tc.path, style, dep, op, ok, tc.style, tc.deployment, tc.o, tc.ok)
		}
	}
}
