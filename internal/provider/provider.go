// Package provider holds one adapter per kind of backend: how to build the
// upstream URL for each style of client request, and how to present the
// backend's credential. Azure's deployment path, api-version and api-key
// header live only in azure.go; OpenAI's /v1 paths and Bearer token in openai.go.
package provider

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Style is the shape of a client's request.
type Style uint8

const (
	// Azure: /openai/deployments/{deployment}{op}?api-version=...
	Azure Style = iota
	// AzureOther: any other path under /openai/ (assistants, files, ...).
	AzureOther
	// OpenAI: /v1{op}, the model in the body.
	OpenAI
	// AzureV1: Azure's /openai/v1{op} surface, the model in the body.
	AzureV1
)

// Request is what an adapter needs to address an upstream.
type Request struct {
	Style Style
	// Op is the operation path with a leading slash ("/chat/completions");
	// for AzureOther, the whole path ("/openai/assistants").
	Op string
	// Name is the upstream's deployment or model name.
	Name string
	// RawQuery is the client's query string, passed untouched where the
	// upstream speaks the same dialect.
	RawQuery string
}

// Adapter addresses one backend. Implementations are safe for concurrent use.
type Adapter interface {
	// URL returns the upstream URL for r.
	URL(r Request) *url.URL
	// Authorize sets the backend's credential on an outgoing header. It may
	// fetch a token; it honours ctx and never hangs past it.
	Authorize(ctx context.Context, h http.Header) error
	// ModelInBody reports whether the upstream reads the model from the
	// body for a request of style s, so the body must carry its Name.
	ModelInBody(s Style) bool
	// StreamUsage reports whether the gateway may ask the upstream for
	// the usage chunk (stream_options.include_usage) for request r.
	StreamUsage(r Request) bool
	// RefuseStreamUsage records that the upstream answered 400 to
	// stream_options for a request like r: StreamUsage then says false
	// for such requests.
	RefuseStreamUsage(r Request)
}

// base splits a configured URL into scheme, host and a path without a
// trailing slash.
func base(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	return u, strings.TrimRight(u.Path, "/"), nil
}

// dropAPIVersion removes api-version from a raw query (other dialects reject it).
func dropAPIVersion(raw string) string {
	if raw == "" || !strings.Contains(raw, "api-version") {
		return raw
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return ""
	}
	v.Del("api-version")
	return v.Encode()
}
