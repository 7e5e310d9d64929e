// Package provider holds one adapter per kind of backend: how to build the
// upstream URL and how to present the backend's credential.
package provider

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Azure is an Azure OpenAI resource reached with an api-key. Immutable; safe
// for concurrent use.
type Azure struct {
	scheme   string
	host     string
	basePath string   // path of the base URL without a trailing "/" or "/openai"
	apiKey   []string // shared, never mutated
}

// NewAzure returns the adapter for base (e.g. https://x.openai.azure.com, or
// the same ending in /openai) sending apiKey as the api-key header.
func NewAzure(base, apiKey string) (*Azure, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("azure: url: %w", err)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/openai")
	a := &Azure{scheme: u.Scheme, host: u.Host, basePath: p}
	if apiKey != "" {
		a.apiKey = []string{apiKey}
	}
	return a, nil
}

// Host is the upstream host (and port).
func (a *Azure) Host() string { return a.host }

// URL returns the upstream URL for a request path under /openai/ and its
// raw query, which passes untouched.
func (a *Azure) URL(path, rawQuery string) *url.URL {
	return &url.URL{Scheme: a.scheme, Host: a.host, Path: a.basePath + path, RawQuery: rawQuery}
}

// Authorize sets the backend's credential on an outgoing header.
func (a *Azure) Authorize(h http.Header) {
	if a.apiKey != nil {
		h["Api-Key"] = a.apiKey
	}
}
