package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llmgate/llmgate/internal/provider"
	"github.com/llmgate/llmgate/internal/reqbody"
)

// hopByHop reports the hop-by-hop headers (RFC 9110 §7.6.1), never
// forwarded. (A switch: cheaper than a map's hash for a few names per
// header of every request and answer.)
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// clientOnly reports the request headers that carry the client's
// credentials or belong to the client's connection; they never reach an
// upstream.
func clientOnly(k string) bool {
	switch k {
	case "Api-Key", "Authorization", "Cookie", "Host", "Content-Length",
		"Ocp-Apim-Subscription-Key", "X-Api-Key": // API Management's and the common custom credential headers
		return true
	}
	return false
}

// carries reports whether any of a header's values holds the client's
// credential: a client key never reaches an upstream, whatever header a
// client (or a library of its) put it in.
func carries(v []string, secret string) bool {
	if secret == "" {
		return false // (every value "contains" nothing)
	}
	for _, s := range v {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

// outbound builds the upstream request for member m of backend b: its URL
// from the adapter, the client's headers minus credentials and hop-by-hop
// ones, the backend's credential, and the body, with the model field set to
// the backend's name where the upstream reads it from the body.
//
// For a stream whose client did not ask for usage, it asks the upstream for
// the usage chunk where the upstream takes stream_options (injected = true):
// the gateway counts it and strips it before the client sees it.
func (h *Handler) outbound(ctx context.Context, r *http.Request, b *Backend, m Member, body []byte, q *request) (out *http.Request, injected bool, err error) {
	hdr := make(http.Header, len(r.Header)+1)
	conn := r.Header["Connection"]
	for k, v := range r.Header {
		if hopByHop(k) || clientOnly(k) || listedIn(conn, k) || carries(v, q.secret) {
			continue
		}
		hdr[k] = v
	}
	// Answers are asked for uncompressed: the gateway reads their usage
	// (a gzip answer would be charged its admission estimate, never its
	// true tokens) and relays streams byte for byte.
	delete(hdr, "Accept-Encoding")
	if err := b.Provider.Authorize(ctx, hdr); err != nil {
		return nil, false, err
	}
	name := m.Name
	if name == "" {
		name = q.canon
	}
	pr := provider.Request{Style: q.style, Op: q.suffix, Name: name, RawQuery: dropCredentials(r.URL.RawQuery, q.secret)}
	u := b.Provider.URL(pr)
	model := ""
	if name != "" && name != q.bodyModel && b.Provider.ModelInBody(q.style) {
		model = name
	}
	// The usage chunk is asked for where stream_options is the API's:
	// chat completions and completions (the Responses API refuses it, and
	// reports usage in its own last event).
	body, injected = q.variant(body, r.Header.Get("Content-Type"), model,
		q.stream && !q.fields.IncludeUsage && expectsDone(q.suffix) && b.Provider.StreamUsage(pr))
	out = &http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Host:          u.Host,
		ContentLength: int64(len(body)),
	}
	if len(body) > 0 {
		out.Body = newReplay(body)
		out.GetBody = func() (io.ReadCloser, error) { return newReplay(body), nil }
	}
	*out = *out.WithContext(ctx) // out is ours: WithContext's copy stays on the stack
	return out, injected, nil
}

// setModel sets the model of a JSON or multipart body.
func setModel(body []byte, contentType, name string) ([]byte, error) {
	if hasPrefixFold(contentType, "multipart/") {
		return reqbody.SetMultipartField(body, contentType, "model", name)
	}
	if len(body) == 0 {
		return body, nil
	}
	return reqbody.SetString(body, "model", name)
}

// replay is a request body that can be sent again (GetBody).
type replay struct{ bytes.Reader }

func newReplay(body []byte) *replay {
	rb := new(replay)
	rb.Reset(body)
	return rb
}

func (*replay) Close() error { return nil }

// listedIn reports whether header k is named in a Connection header value.
func listedIn(conn []string, k string) bool {
	for _, v := range conn {
		for _, f := range strings.Split(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

// writeHeader copies an upstream response's headers (minus hop-by-hop) and
// adds llmgate's own, then writes the status.
func (h *Handler) writeHeader(w http.ResponseWriter, status int, up http.Header, backend string, q *request) {
	h.writeHeaderWith(w, status, up, backend, q, -1)
}

// writeHeaderWith is writeHeader that, when ra ≥ 0, replaces the upstream's
// retry delay headers with ra.
func (h *Handler) writeHeaderWith(w http.ResponseWriter, status int, up http.Header, backend string, q *request, ra time.Duration) {
	dst := w.Header()
	conn := up["Connection"]
	for k, v := range up {
		if hopByHop(k) || listedIn(conn, k) {
			continue
		}
		if k == "X-Should-Retry" && dst[k] != nil {
			continue // the gateway's own advice (finalAdvice) stands
		}
		dst[k] = v
	}
	if ra >= 0 {
		delete(dst, "X-Ms-Retry-After-Ms")
		setRetryAfter(dst, ra)
	}
	setRemaining(dst, q)
	dst["X-Llmgate-Backend"] = []string{backend}
	dst["X-Llmgate-Attempts"] = attemptsValue(q.attempts)
	dst["X-Llmgate-Trail"] = []string{string(q.trail)}
	q.status = status
	q.backend = backend
	q.ttfb = h.now().Sub(q.start)
	w.WriteHeader(status)
}

// attemptValues are the x-llmgate-attempts values of the usual counts,
// shared (header values are never modified after they are set).
var attemptValues = func() [16][]string {
	var v [16][]string
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

func attemptsValue(n int) []string {
	if n >= 0 && n < len(attemptValues) {
		return attemptValues[n]
	}
	return []string{strconv.Itoa(n)}
}

// dropCredentials removes a client credential sent in the query string
// (api-key, API Management's subscription-key, api_key, key, or the
// client's key under any other name): like the credential headers, it never
// reaches an upstream.
func dropCredentials(raw, secret string) string {
	if raw == "" || !strings.Contains(strings.ToLower(raw), "key=") && (secret == "" || !strings.Contains(raw, secret) && !strings.Contains(raw, "%")) {
		return raw
	}
	// Parameter by parameter, so that what stays is sent exactly as the
	// client wrote it (order, encoding, empty values).
	var b strings.Builder
	dropped := false
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		k, v, _ := strings.Cut(part, "=")
		uk, err1 := url.QueryUnescape(k)
		uv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return "" // unreadable: nothing of it is worth the risk
		}
		drop := false
		switch strings.ToLower(uk) {
		case "api-key", "subscription-key", "api_key", "key":
			drop = true
		}
		if secret != "" && (strings.Contains(uv, secret) || strings.Contains(uk, secret)) {
			drop = true // the key under another name
		}
		if drop {
			dropped = true
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	if !dropped {
		return raw
	}
	return b.String()
}

// bodyVariant is the request body as one kind of upstream needs it: the
// model set to a backend's name, the usage chunk asked for. A request keeps
// the last one made, so retries to the same kind of backend reuse it.
type bodyVariant struct {
	model    string
	usage    bool
	body     []byte
	injected bool
	made     bool
}

// variant returns body with the model set to model (unless "") and the
// stream's usage chunk asked for (if usage); injected reports the latter.
func (q *request) variant(body []byte, contentType, model string, usage bool) ([]byte, bool) {
	if model == "" && !usage {
		return body, false
	}
	v := &q.rewritten
	if v.made && v.model == model && v.usage == usage {
		return v.body, v.injected
	}
	out, injected := body, false
	if model != "" {
		if nb, err := setModel(out, contentType, model); err == nil {
			out = nb
		}
	}
	if usage {
		if nb, err := reqbody.IncludeUsage(out); err == nil {
			out, injected = nb, true
		}
	}
	*v = bodyVariant{model: model, usage: usage, body: out, injected: injected, made: true}
	return out, injected
}
