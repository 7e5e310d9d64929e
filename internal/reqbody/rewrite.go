package reqbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
)

// SetString returns a copy of the JSON object body with top-level key name
// set to the string value (replaced where present, added first otherwise).
func SetString(body []byte, name, value string) ([]byte, error) {
	q, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	return SetRaw(body, name, q)
}

// IncludeUsage returns a copy of the JSON object body whose
// stream_options.include_usage is true, other stream options kept.
func IncludeUsage(body []byte) ([]byte, error) {
	opts, found, err := Field(body, "stream_options")
	if err != nil {
		return nil, err
	}
	inner := []byte(`{"include_usage":true}`)
	if found && len(opts) > 0 && opts[0] == '{' {
		if inner, err = SetRaw(opts, "include_usage", []byte("true")); err != nil {
			return nil, err
		}
	}
	return SetRaw(body, "stream_options", inner)
}

// SetRaw returns a copy of the JSON object body with top-level key name set
// to the raw JSON value q (replaced where present, added first otherwise).
func SetRaw(body []byte, name string, q []byte) ([]byte, error) {
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return nil, ErrSyntax
	}
	open := s.i
	s.ws()
	if s.eat('}') {
		return concat(body[:open], []byte(`"`+name+`":`), q, body[open:]), nil
	}
	start, end := -1, -1
	for {
		s.ws()
		k, esc, ok := s.str()
		if !ok {
			return nil, ErrSyntax
		}
		s.ws()
		if !s.eat(':') {
			return nil, ErrSyntax
		}
		s.ws()
		vs := s.i
		if !s.value(0) {
			return nil, ErrSyntax
		}
		if keyEquals(k, esc, name) {
			start, end = vs, s.i
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			break
		}
		return nil, ErrSyntax
	}
	if start >= 0 {
		return concat(body[:start], q, body[end:]), nil
	}
	return concat(body[:open], []byte(`"`+name+`":`), q, []byte(","), body[open:]), nil
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// maxFieldBytes bounds a multipart text field read by the gateway.
const maxFieldBytes = 4096

// ErrNoBoundary reports a multipart content type without a boundary.
var ErrNoBoundary = errors.New("reqbody: multipart body without boundary")

func boundary(contentType string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return "", ErrNoBoundary
	}
	return params["boundary"], nil
}

// MultipartField returns the value of the form field name in a
// multipart/form-data body (e.g. the model of an audio transcription).
// found is false when the field is absent.
func MultipartField(body []byte, contentType, name string) (value string, found bool, err error) {
	b, err := boundary(contentType)
	if err != nil {
		return "", false, err
	}
	mr := multipart.NewReader(bytes.NewReader(body), b)
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		if p.FormName() == name && p.FileName() == "" {
			v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
			if err != nil {
				return "", false, err
			}
			if len(v) > maxFieldBytes {
				return "", false, errors.New("reqbody: multipart field too long")
			}
			return string(v), true, nil
		}
	}
}

// SetMultipartField returns a copy of a multipart/form-data body with the
// text field name set to value; every other part is copied byte for byte.
func SetMultipartField(body []byte, contentType, name, value string) ([]byte, error) {
	b, err := boundary(contentType)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(body) + len(value))
	mw := multipart.NewWriter(&out)
	if err := mw.SetBoundary(b); err != nil {
		return nil, err
	}
	mr := multipart.NewReader(bytes.NewReader(body), b)
	set := false
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		w, err := mw.CreatePart(p.Header)
		if err != nil {
			return nil, err
		}
		if p.FormName() == name && p.FileName() == "" {
			_, err = io.WriteString(w, value)
			set = true
		} else {
			_, err = io.Copy(w, p)
		}
		if err != nil {
			return nil, err
		}
	}
	if !set {
		if err := mw.WriteField(name, value); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
