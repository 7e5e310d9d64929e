package h1

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// fastResponse parses the response head at the start of p when it has the
// plain shape of nearly every upstream answer, and says no (ok false) to
// anything else, which http.ReadResponse then parses from the same bytes.
// The plain shape: the whole head within p; "HTTP/1.1", a status from 200
// to 599 other than 204 and 304, a reason phrase without control bytes;
// lines ended by CRLF; token header names; values of the bytes RFC 9110
// allows (tab, space, visible ASCII, obs-text); no folded line; exactly one
// Content-Length of digits, or "Transfer-Encoding: chunked" (an SSE
// stream) and no Content-Length; no Connection, Trailer or Pragma; not an
// answer to HEAD. On every head it accepts, it gives what
// http.ReadResponse gives (FuzzFastResponse checks that): the same status,
// protocol, header map (canonical names, values trimmed; a repeated name
// is left to the standard library; Transfer-Encoding taken out, as
// there), length (-1 when chunked), TransferEncoding and Close (false). It
// reads nothing: n is the head's length, the body follows it. The
// response has no Body yet (the caller frames it: fixedBody or
// chunkedBody); a zero ContentLength has http.NoBody.
//
// It costs about half the CPU of http.ReadResponse and a few allocations
// (the header block is one string that names and values are cut from, the
// map and one slice for all values) instead of one or more per header.
func fastResponse(p []byte, req *http.Request) (resp *http.Response, n int, ok bool) {
	if req != nil && req.Method == http.MethodHead {
		return nil, 0, false
	}
	// The status line: "HTTP/1.1 200" and, optionally, " reason".
	line, block, n, ok := splitHead(p)
	if !ok || len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return nil, 0, false
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, 0, false
	}
	if len(line) > 12 && line[12] != ' ' {
		return nil, 0, false
	}
	for _, c := range line[12:] {
		if !valueByte(c) {
			return nil, 0, false
		}
	}
	hdr, length, chunked, ok := fields(block, nil)
	if hasLength := length >= 0; !ok || hasLength == chunked || hdr["Connection"] != nil {
		return nil, 0, false // not exactly one framing, or Connection
	}
	resp = &http.Response{
		Status:        string(line[9:]),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		ContentLength: length,
		Request:       req,
	}
	if chunked {
		resp.TransferEncoding = []string{"chunked"}
	}
	if length == 0 {
		resp.Body = http.NoBody
	}
	return resp, n, true
}

// fastRequest parses the request head at the start of p when it has the
// plain shape clients send, and says no (ok false) to anything else, which
// http.ReadRequest then parses from the same bytes. The plain shape: the
// whole head within p; a token method other than CONNECT, an origin-form
// target (validURI) and "HTTP/1.1"; header lines as
// fields takes them; exactly one Host; at most one Content-Length;
// Connection, if any, one "keep-alive" or "close". On every head it
// accepts it gives what http.ReadRequest gives (FuzzFastRequest): method,
// URL (url.ParseRequestURI's), RequestURI, protocol, headers (Host taken
// out, as there), Host, length and Close. It reads nothing: n is the
// head's length. A request with a body has no Body yet (the caller reads
// ContentLength bytes after the head); one without has http.NoBody.
func fastRequest(p []byte) (req *http.Request, n int, ok bool) {
	const proto = " HTTP/1.1"
	line, block, n, ok := splitHead(p)
	if !ok {
		return nil, 0, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp+1 > len(line)-len(proto) || string(line[len(line)-len(proto):]) != proto {
		return nil, 0, false
	}
	method, uri := methodName(line[:sp]), string(line[sp+1:len(line)-len(proto)])
	if !validName(method) || method == http.MethodConnect || !validURI(uri) {
		return nil, 0, false
	}
	var host string
	hdr, length, chunked, ok := fields(block, &host)
	if !ok || host == "" || chunked {
		return nil, 0, false
	}
	closing := false
	if conn := hdr["Connection"]; conn != nil { // one value: fields refuses repeats
		switch {
		case strings.EqualFold(conn[0], "keep-alive"):
		case strings.EqualFold(conn[0], "close"):
			closing = true
		default:
			return nil, 0, false
		}
	}
	u, ok := plainURL(uri)
	if !ok {
		var err error
		if u, err = url.ParseRequestURI(uri); err != nil {
			return nil, 0, false
		}
	}
	req = &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       host,
		Close:      closing,
		RequestURI: uri,
	}
	if length > 0 {
		req.ContentLength = length
	} else {
		req.Body = http.NoBody
	}
	return req, n, true
}

// methodName is method as a string, the usual ones without a copy.
func methodName(m []byte) string {
	switch string(m) {
	case http.MethodPost:
		return http.MethodPost
	case http.MethodGet:
		return http.MethodGet
	}
	return string(m)
}

// splitHead finds the head at the start of p: its first line (without
// its CRLF), its header lines (each with its CRLF) and its length, the
// blank line included. ok is false when the head is not all in p or its
// first line does not end in CRLF.
func splitHead(p []byte) (first, lines []byte, n int, ok bool) {
	end := bytes.Index(p, crlf2)
	if end < 0 {
		return nil, nil, 0, false
	}
	nl := bytes.IndexByte(p[:end+2], '\n')
	if nl < 1 || p[nl-1] != '\r' {
		return nil, nil, 0, false
	}
	return p[:nl-1], p[nl+1 : end+2], end + 4, true
}

// fields parses a head's header lines (each ended by CRLF; the blank line
// not included) of the plain shape into a new map, with the Content-Length
// (-1: none) and whether the body is chunked ("Transfer-Encoding:
// chunked", kept out of the map as net/http does); ok is false for
// anything else: a line that is not a token name, a colon and a value of
// allowed bytes; a repeated name; a malformed Content-Length; another
// Transfer-Encoding; Trailer or Pragma (framing, or a header the standard
// library rewrites). Names are canonical and values
// trimmed as net/textproto does; the lines are one string that names and
// values are cut from, and the values of the map one slice. With host
// non-nil, the Host header goes there instead of the map.
func fields(block []byte, host *string) (hdr http.Header, length int64, chunked, ok bool) {
	lines := bytes.Count(block, crlf)
	all := string(block)
	hdr = make(http.Header, lines)
	vals := make([]string, lines)
	length = -1
	for i := 0; len(all) > 0; i++ {
		eol := strings.Index(all, "\r\n")
		kv := all[:eol]
		all = all[eol+2:]
		colon := strings.IndexByte(kv, ':')
		if colon <= 0 {
			return nil, 0, false, false // no name, or a folded line (a name would have no space)
		}
		name, v := kv[:colon], trimOWS(kv[colon+1:])
		if !validName(name) || !validValue(v) {
			return nil, 0, false, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name) // name itself when already canonical
		switch key {
		case "Content-Length":
			cl, err := strconv.ParseUint(v, 10, 63) // as net/http reads it
			if length >= 0 || err != nil {
				return nil, 0, false, false
			}
			length = int64(cl)
		case "Transfer-Encoding":
			if chunked || !strings.EqualFold(v, "chunked") {
				return nil, 0, false, false
			}
			chunked = true
			continue
		case "Trailer", "Pragma":
			return nil, 0, false, false
		case "Host":
			if host != nil {
				if *host != "" || v == "" {
					return nil, 0, false, false // repeated or empty: the standard library's rules decide
				}
				*host = v
				continue
			}
		}
		n := len(hdr)
		vals[i] = v
		hdr[key] = vals[i : i+1 : i+1]
		if len(hdr) == n {
			return nil, 0, false, false // a repeated name (rare): the standard library keeps every value
		}
	}
	return hdr, length, chunked, true
}

// trimOWS is s without the spaces and tabs around it.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return trimTrailingOWS(s)
}

// trimTrailingOWS is s without the spaces and tabs at its end (a header
// value's end, a chunk size line's).
func trimTrailingOWS[T string | []byte](s T) T {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// plainURL is url.ParseRequestURI's answer for a target whose path is
// only unreserved characters and slashes (nothing to unescape) and whose
// query, if any, is not empty; ok false for any other target.
func plainURL(uri string) (*url.URL, bool) {
	path, query, hasQuery := strings.Cut(uri, "?")
	if hasQuery && (query == "" || strings.IndexByte(query, '?') >= 0) {
		return nil, false // ParseRequestURI's ForceQuery and repeated '?' rules
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
			return nil, false
		}
	}
	return &url.URL{Path: path, RawQuery: query}, true
}

var (
	crlf  = []byte("\r\n")
	crlf2 = []byte("\r\n\r\n")
)

// fixedBody reads a body of a known length from r: io.EOF with its last
// bytes, io.ErrUnexpectedEOF if r ends before it (as the standard
// library's body).
type fixedBody struct {
	r    io.Reader
	left int64
}

func (f *fixedBody) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	switch {
	case f.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (*fixedBody) Close() error { return nil }
