package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DefaultAPIVersion is the api-version sent to Azure for requests that came
// in OpenAI style (which carries none).
const DefaultAPIVersion = "2024-10-21"

// AzureBackend is an Azure OpenAI resource, reached with an api-key or an
// Entra ID token. Immutable; safe for concurrent use.
type AzureBackend struct {
	scheme     string
	host       string
	basePath   string   // path of the base URL without a trailing "/" or "/openai"
	apiKey     []string // shared, never mutated; nil when tokens are used
	apiVersion string
	tokens     TokenSource
}

// TokenSource returns a bearer token; an Entra ID token cache implements it.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// AzureOptions configures NewAzure.
type AzureOptions struct {
	// URL is the resource's base URL, e.g. https://x.openai.azure.com (a URL
	// ending in /openai is not doubled).
	URL string
	// APIKey is sent as the api-key header. Empty: none (or Tokens).
	APIKey string
	// Tokens, when set, supplies an Entra ID bearer token instead of a key.
	Tokens TokenSource
	// APIVersion is sent with requests that came in OpenAI style. Default DefaultAPIVersion.
	APIVersion string
}

// NewAzure returns the adapter for an Azure OpenAI resource.
func NewAzure(o AzureOptions) (*AzureBackend, error) {
	u, p, err := base(o.URL)
	if err != nil {
		return nil, fmt.Errorf("azure: url: %w", err)
	}
	a := &AzureBackend{scheme: u.Scheme, host: u.Host, basePath: strings.TrimSuffix(p, "/openai"),
		apiVersion: o.APIVersion, tokens: o.Tokens}
	if a.apiVersion == "" {
		a.apiVersion = DefaultAPIVersion
	}
	if o.APIKey != "" && o.Tokens == nil {
		a.apiKey = []string{o.APIKey}
	}
	return a, nil
}

// URL implements Adapter.
func (a *AzureBackend) URL(r Request) *url.URL {
	u := &url.URL{Scheme: a.scheme, Host: a.host, RawQuery: r.RawQuery}
	switch r.Style {
	case Azure:
		u.Path = a.basePath + "/openai/deployments/" + r.Name + r.Op
	case OpenAI:
		u.Path = a.basePath + "/openai/deployments/" + r.Name + r.Op
		q := url.Values{}
		if r.RawQuery != "" {
			q, _ = url.ParseQuery(r.RawQuery)
		}
		q.Set("api-version", a.apiVersion)
		u.RawQuery = q.Encode()
	case AzureV1:
		u.Path = a.basePath + "/openai/v1" + r.Op
	default:
		u.Path = a.basePath + r.Op
	}
	return u
}

// Authorize implements Adapter.
func (a *AzureBackend) Authorize(ctx context.Context, h http.Header) error {
	if a.tokens != nil {
		tok, err := a.tokens.Token(ctx)
		if err != nil {
			return err
		}
		h["Authorization"] = []string{"Bearer " + tok}
		return nil
	}
	if a.apiKey != nil {
		h["Api-Key"] = a.apiKey
	}
	return nil
}

// ModelInBody implements Adapter: only Azure's v1 surface reads the model from the body.
func (a *AzureBackend) ModelInBody(s Style) bool { return s == AzureV1 }

// StreamUsage implements Adapter.
func (a *AzureBackend) StreamUsage(r Request) bool {
	switch r.Style {
	case OpenAI:
		return a.apiVersion >= streamUsageSince
	case AzureV1:
		return true
	case Azure:
		q, err := url.ParseQuery(r.RawQuery)
		return err == nil && q.Get("api-version") >= streamUsageSince
	}
	return false
}
