package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entra defaults.
const (
	DefaultAuthority  = "https://login.microsoftonline.com"
	DefaultEntraScope = "https://cognitiveservices.azure.com/.default"
	entraFetchTimeout = 10 * time.Second
	// After a failed fetch, callers get its error without a new fetch for
	// entraRetryMin, doubled after each further failure up to entraRetryMax:
	// an identity provider in trouble gets one request per interval, not
	// one per client request.
	entraRetryMin = time.Second
	entraRetryMax = 30 * time.Second
)

// ErrTokenRecentlyFailed marks an error returned from the last failed
// fetch, without a new one (the proxy logs each failure once).
var ErrTokenRecentlyFailed = errors.New("the last token fetch failed; not retried yet")

// EntraOptions configures an Entra ID token source. Exactly one of
// ClientSecret (client-credentials flow) and FederatedTokenFile (workload
// identity: the file's JWT is the client assertion) is required.
type EntraOptions struct {
	// Backend names the backend in errors.
	Backend string
	// Authority is the identity provider's base URL. Default DefaultAuthority.
	Authority          string
	TenantID, ClientID string
	ClientSecret       string
	FederatedTokenFile string
	// Scope requested. Default DefaultEntraScope.
	Scope string
	// Client sends token requests. Nil: a client with a 10s timeout.
	Client *http.Client
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Entra fetches and caches Entra ID tokens: concurrent callers share one
// fetch, a token is refreshed before it expires, and a failure is an error
// naming the backend, never a hang. A failure is remembered for a while
// (see entraRetryMin): callers meanwhile get its error at once, or the
// token still valid. Safe for concurrent use.
type Entra struct {
	o        EntraOptions
	endpoint string

	mu        sync.Mutex // guards the fields below
	token     string
	refreshAt time.Time // after this, fetch a new token in the background
	expiresAt time.Time // after this, the token is not used
	fetching  chan struct{}
	lastErr   error
	retryAt   time.Time     // after a failure, no fetch before this
	backoff   time.Duration // the wait after the last failure; 0 after a success
}

// NewEntra returns a token source.
func NewEntra(o EntraOptions) (*Entra, error) {
	if o.Authority == "" {
		o.Authority = DefaultAuthority
	}
	if o.Scope == "" {
		o.Scope = DefaultEntraScope
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: entraFetchTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TenantID == "" || o.ClientID == "" || (o.ClientSecret == "") == (o.FederatedTokenFile == "") {
		return nil, fmt.Errorf("entra for backend %s: tenant_id, client_id and one of client_secret or federated_token_file are required", o.Backend)
	}
	ep := strings.TrimRight(o.Authority, "/") + "/" + url.PathEscape(o.TenantID) + "/oauth2/v2.0/token"
	return &Entra{o: o, endpoint: ep}, nil
}

// Token returns a valid token, fetching one if needed.
func (e *Entra) Token(ctx context.Context) (string, error) {
	for {
		e.mu.Lock()
		now := e.o.Now()
		if e.token != "" && now.Before(e.expiresAt) {
			tok := e.token
			if !now.Before(e.refreshAt) && e.fetching == nil && !now.Before(e.retryAt) {
				// Refresh early, in the background; callers keep the valid token.
				e.startFetch()
			}
			e.mu.Unlock()
			return tok, nil
		}
		if e.fetching == nil {
			if now.Before(e.retryAt) && e.lastErr != nil {
				err := fmt.Errorf("%w (%w)", e.lastErr, ErrTokenRecentlyFailed)
				e.mu.Unlock()
				return "", err
			}
			e.startFetch()
		}
		wait := e.fetching
		e.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return "", fmt.Errorf("entra token for backend %s: %w", e.o.Backend, ctx.Err())
		}
		e.mu.Lock()
		err := e.lastErr
		ok := e.token != "" && e.o.Now().Before(e.expiresAt)
		e.mu.Unlock()
		if !ok {
			if err == nil {
				err = errors.New("no token")
			}
			return "", err
		}
	}
}

// startFetch begins one fetch; the caller holds e.mu.
func (e *Entra) startFetch() {
	done := make(chan struct{})
	e.fetching = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), entraFetchTimeout)
		defer cancel()
		tok, ttl, err := e.fetch(ctx)
		e.mu.Lock()
		now := e.o.Now()
		if err != nil {
			e.lastErr = fmt.Errorf("entra token for backend %s: %w", e.o.Backend, err)
			e.backoff = min(max(2*e.backoff, entraRetryMin), entraRetryMax)
			e.retryAt = now.Add(e.backoff)
		} else {
			e.token, e.lastErr, e.backoff, e.retryAt = tok, nil, 0, time.Time{}
			e.expiresAt = now.Add(ttl - min(30*time.Second, ttl/10))
			e.refreshAt = now.Add(ttl - min(5*time.Minute, ttl/4))
		}
		e.fetching = nil
		e.mu.Unlock()
		close(done)
	}()
}

func (e *Entra) fetch(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {e.o.ClientID},
		"scope":      {e.o.Scope},
	}
	if e.o.FederatedTokenFile != "" {
		jwt, err := os.ReadFile(e.o.FederatedTokenFile)
		if err != nil {
			return "", 0, fmt.Errorf("read federated token file: %w", err)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", strings.TrimSpace(string(jwt)))
	} else {
		form.Set("client_secret", e.o.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.o.Client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, err
	}
	var tr struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		msg := tr.Error
		if msg == "" {
			msg = "no access_token in the answer"
		}
		return "", 0, fmt.Errorf("token endpoint answered %d: %s", resp.StatusCode, msg)
	}
	secs, err := strconv.ParseFloat(strings.Trim(string(tr.ExpiresIn), `"`), 64)
	if err != nil || secs <= 0 {
		secs = 300
	}
	return tr.AccessToken, time.Duration(secs * float64(time.Second)), nil
}
