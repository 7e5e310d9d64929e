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
