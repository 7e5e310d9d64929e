package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strings"
)

// static holds the status page's sources. They are joined into one
// self-contained HTML document at start, so the page loads with one
// request and its Content-Security-Policy can pin the exact script and
// style by hash.
//
//go:embed static/status.html static/status.css static/status.js
var static embed.FS

// statusPage is the assembled page and its policy. Immutable.
type statusPage struct {
	html []byte
	csp  string
}

func buildPage() statusPage {
	read := func(name string) string {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			panic("admin: embedded " + name + " missing: " + err.Error()) // a build defect, never input
		}
		return string(b)
	}
	css, js := read("status.css"), read("status.js")
	html := strings.Replace(read("status.html"), "/*STYLE*/", css, 1)
	html = strings.Replace(html, "/*SCRIPT*/", js, 1)
	hash := func(s string) string {
		d := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(d[:]) + "'"
	}
	csp := "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) +
		" 'unsafe-hashes'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return statusPage{html: []byte(html), csp: csp}
}

// serveStatus serves the page. Without the admin key the answer is 401,
// and the page shows only its login form: it holds no data itself and
// fetches everything with the key it is given (#key=... or the form).
func (a *Admin) serveStatus(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	h := w.Header()
	if !a.check(r) {
		// No WWW-Authenticate: a browser would prompt (or, headless, fail
		// the load) instead of showing the page's own login form.
		status = http.StatusUnauthorized
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", a.page.csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(a.page.html)
}
