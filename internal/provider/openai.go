package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// OpenAIBackend is OpenAI or any OpenAI-compatible server (vLLM, Ollama, LM
// Studio), reached with a Bearer token. Immutable; safe for concurrent use.
type OpenAIBackend struct {
	scheme   string
	host     string
	basePath string      // e.g. "/v1"
	bearer   []string    // "Bearer KEY"; nil for a server that needs no key
	noUsage  atomic.Bool // the server answered 400 to stream_options once
}

// NewOpenAI returns the adapter for base, the URL an OpenAI SDK would take
// (with /v1, e.g. https://api.openai.com/v1), sending apiKey as a Bearer token.
func NewOpenAI(baseURL, apiKey string) (*OpenAIBackend, error) {
	u, p, err := base(baseURL)
	if err != nil {
		return nil, fmt.Errorf("openai: url: %w", err)
	}
	o := &OpenAIBackend{scheme: u.Scheme, host: u.Host, basePath: p}
	if apiKey != "" {
		o.bearer = []string{"Bearer " + apiKey}
	}
	return o, nil
}

// URL implements Adapter.
func (o *OpenAIBackend) URL(r Request) *url.URL {
	u := &url.URL{Scheme: o.scheme, Host: o.host}
	switch r.Style {
	case AzureOther:
		u.Path = o.basePath + strings.TrimPrefix(r.Op, "/openai")
		u.RawQuery = dropAPIVersion(r.RawQuery)
	case OpenAI:
		u.Path = o.basePath + r.Op
		u.RawQuery = r.RawQuery
	default: // Azure, AzureV1
		u.Path = o.basePath + r.Op
		u.RawQuery = dropAPIVersion(r.RawQuery)
	}
	return u
}

// Authorize implements Adapter.
func (o *OpenAIBackend) Authorize(_ context.Context, h http.Header) error {
	if o.bearer != nil {
		h["Authorization"] = o.bearer
	}
	return nil
}

// ModelInBody implements Adapter: OpenAI always reads the model from the body.
func (o *OpenAIBackend) ModelInBody(Style) bool { return true }

// StreamUsage implements Adapter: OpenAI and compatible servers take stream_options.
func (o *OpenAIBackend) StreamUsage(Request) bool { return !o.noUsage.Load() }

// RefuseStreamUsage implements Adapter: OpenAI-compatible servers that
// refuse stream_options (some older self-hosted ones) are not asked again.
func (o *OpenAIBackend) RefuseStreamUsage(Request) { o.noUsage.Store(true) }
