package provider

import "testing"

// A request in OpenAI's style is mapped onto Azure's paths: with a model,
// the deployment's operation; without one (files, batches), the
// resource's own operation under /openai, never an empty deployment name.
func TestAzureURLForOpenAIStyle(t *testing.T) {
	t.Parallel()
	a, err := NewAzure(AzureOptions{URL: "https://r.openai.azure.com/", APIKey: "k", APIVersion: "2024-10-21"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, op, query, want string }{
		{"gpt-4o", "/chat/completions", "", "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"},
		{"", "/files/file-1", "", "https://r.openai.azure.com/openai/files/file-1?api-version=2024-10-21"},
		{"", "/batches", "limit=2", "https://r.openai.azure.com/openai/batches?api-version=2024-10-21&limit=2"},
		{"gpt-4o-mini", "/fine_tuning/jobs", "", "https://r.openai.azure.com/openai/fine_tuning/jobs?api-version=2024-10-21"},
	} {
		got := a.URL(Request{Style: OpenAI, Name: tc.name, Op: tc.op, RawQuery: tc.query}).String()
		if got != tc.want {
			t.Errorf("%q %s: got %s, want %s", tc.name, tc.op, got, tc.want)
		}
	}
}
