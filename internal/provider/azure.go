package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// DefaultAPIVersion is the api-version sent to Azure for requests that came
// in OpenAI style (which carries none).
const DefaultAPIVersion = "2024-10-21"

// AzureBackend is an Azure OpenAI resource, reached with an api-key or an
// Entra ID token. Safe for concurrent use; its only state is what it has
// learned of the api-versions that refuse stream_options.
type AzureBackend struct {
	scheme     string
	host       string
	basePath   string   // path of the base URL without a trailing "/" or "/openai"
	apiKey     []string // shared, never mutated; nil when tokens are used
	apiVersion string
	tokens     TokenSource
	noUsage    refusals // api-versions this resource answered 400 to stream_options for
}

// refusals is a small set of api-versions, bounded so that a resource
// refusing every version (or versions made up by clients) cannot grow it.
type refusals struct {
	mu  sync.RWMutex
	set map[string]struct{}
}

const maxRefusals = 64

func (r *refusals) has(v string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.set[v]
	return ok
}

func (r *refusals) add(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil {
		r.set = map[string]struct{}{}
	}
	if len(r.set) < maxRefusals {
		r.set[v] = struct{}{}
	}
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
		if r.Name == "" || !deploymentOp(r.Op) {
			// A resource's own operation (files, batches, fine-tuning
			// jobs, responses), which Azure serves under /openai, the
			// model (if any) staying in the body.
			u.Path = a.basePath + "/openai" + r.Op
		} else {
			u.Path = a.basePath + "/openai/deployments/" + r.Name + r.Op
		}
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

// deploymentOp reports whether Azure serves an operation under a
// deployment (/openai/deployments/{name}/...).
func deploymentOp(op string) bool {
	switch op {
	case "/chat/completions", "/completions", "/embeddings", "/images/generations", "/images/edits",
		"/audio/transcriptions", "/audio/translations", "/audio/speech":
		return true
	}
	return false
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

// StreamUsage implements Adapter. Azure documents stream_options from
// api-version 2024-09-01 (and the v1 surface), and earlier versions may
// refuse it, but many resources (and the simulator) accept it at any
// version: it is asked for at every version until the resource has refused
// it for that version once (RefuseStreamUsage), so the gateway counts the
// true usage of streams wherever it can.
func (a *AzureBackend) StreamUsage(r Request) bool {
	switch r.Style {
	case AzureV1:
		return true
	case OpenAI, Azure:
		return !a.noUsage.has(a.version(r))
	}
	return false
}

// RefuseStreamUsage implements Adapter: the resource answered 400 to
// stream_options for r's api-version; it is not asked for again there.
func (a *AzureBackend) RefuseStreamUsage(r Request) {
	if r.Style == OpenAI || r.Style == Azure {
		a.noUsage.add(a.version(r))
	}
}

// version is the api-version a request goes upstream with.
func (a *AzureBackend) version(r Request) string {
	if r.Style == OpenAI {
		return a.apiVersion
	}
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		return ""
	}
	return q.Get("api-version")
}
