package tracing

import "testing"

// Span names are bounded: the route template with a known operation, never
// a path a client wrote.
func TestRouteOfIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ path, route, model string }{
		{"/openai/deployments/gpt-4o/chat/completions", "/openai/deployments/{deployment}/chat/completions", "gpt-4o"},
		{"/openai/deployments/d/zz-secret-path", "/openai/deployments/{deployment}/other", "d"},
		{"/v1/embeddings", "/v1/embeddings", ""},
		{"/openai/v1/responses", "/openai/v1/responses", ""},
		{"/openai/whatever/zz-secret-path", "/openai/other", ""},
		{"/random/abc123", "other", ""},
		{"/healthz", "/healthz", ""},
	} {
		if route, model := routeOf(tc.path); route != tc.route || model != tc.model {
			t.Errorf("routeOf(%q) = %q, %q; want %q, %q", tc.path, route, model, tc.route, tc.model)
		}
	}
}
