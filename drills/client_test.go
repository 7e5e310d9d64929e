package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Clients, requests, and what each answer amounts to.

// kind is a kind of client request.
type kind uint8

const (
	chatPlain kind = iota
	chatStream
	embeddings
	transcription
)

func (k kind) String() string {
	return [...]string{"chat", "stream", "embeddings", "multipart"}[k]
}

// halfStreaming alternates plain and streaming chat.
func halfStreaming(i int) kind {
	if i%2 == 1 {
		return chatStream
	}
	return chatPlain
}

// mixed cycles through plain, streaming, embeddings and multipart.
func mixed(i int) kind {
	return [...]kind{chatPlain, chatStream, chatStream, embeddings, chatPlain, transcription}[i%6]
}

// client drives a gateway with plain net/http.
type client struct {
	hc   *http.Client
	tr   *http.Transport
	base string
}

func newClient(t testing.TB, base string) *client {
	t.Helper()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	c := &client{hc: &http.Client{Transport: tr, Timeout: hungAfter}, tr: tr, base: base}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

const apiVersion = "2024-10-21"

// request builds request i of kind k; odd requests carry the key as
// Authorization: Bearer, even ones as api-key.
func (c *client) request(k kind, i int) *http.Request {
	var path, ct string
	var body []byte
	switch k {
	case chatPlain, chatStream:
		path = "/openai/deployments/gpt-4o/chat/completions?api-version=" + apiVersion
		ct = "application/json"
		stream := ""
		if k == chatStream {
			stream = `,"stream":true`
		}
		body = fmt.Appendf(nil, `{"messages":[{"role":"user","content":"drill request %d [[tokens:10]]"}],"max_tokens":20%s}`, i, stream)
	case embeddings:
		path = "/openai/deployments/text-embedding-3-small/embeddings?api-version=" + apiVersion
		ct = "application/json"
		body = fmt.Appendf(nil, `{"input":"drill embedding %d"}`, i)
	case transcription:
		path = "/openai/deployments/whisper/audio/transcriptions?api-version=" + apiVersion
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file", "drill.wav")
		_, _ = fw.Write(bytes.Repeat([]byte{byte(i)}, 3200))
		_ = mw.WriteField("response_format", "json")
		_ = mw.Close()
		body, ct = b.Bytes(), mw.FormDataContentType()
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", ct)
	if i%2 == 1 {
		req.Header.Set("Authorization", "Bearer "+clientKey)
	} else {
		req.Header.Set("api-key", clientKey)
	}
	return req
}

// outcome is what one client request got.
type outcome uint8

const (
	// okAnswer: one complete answer (JSON, or a stream ending in [DONE]).
	okAnswer outcome = iota
	// errorAnswer: one clear error: an error status with a JSON error body,
	// or a 200 stream that ends with a data: {"error":...} event.
	errorAnswer
	// aborted: the headers came, then the connection was cut before the
	// declared body was complete; the client's HTTP library reports an error.
	aborted
	// lost: no answer at all (the connection failed before any headers).
	lost
	// hung: no complete answer within hungAfter.
	hung
	// truncated: a body that ended cleanly but incomplete (silent truncation).
	truncated
	// double: more than one answer in one response.
	double
	numOutcomes
)

func (o outcome) String() string {
	return [...]string{"ok", "error", "aborted", "lost", "hung", "truncated", "double"}[o]
}

// result is one client request's record.
type result struct {
	i          int
	kind       kind
	start      time.Time
	latency    time.Duration
	status     int
	out        outcome
	attempts   int
	trail      string
	backend    string
	retryAfter string
	errCode    string // error.code of a JSON error or an error event
	jsonErr    bool   // the error body was the JSON error shape
	err        error
}

// do sends request i of kind k and reads the whole answer.
func (c *client) do(k kind, i int) result {
	return c.send(c.request(k, i), k, i)
}

func (c *client) send(req *http.Request, k kind, i int) result {
	r := result{i: i, kind: k, start: time.Now()}
	resp, err := c.hc.Do(req)
	if err != nil {
		r.latency, r.err = time.Since(r.start), err
		r.out = lost
		if isTimeout(err) {
			r.out = hung
		}
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	r.attempts, _ = strconv.Atoi(resp.Header.Get("X-Llmgate-Attempts"))
	r.trail = resp.Header.Get("X-Llmgate-Trail")
	r.backend = resp.Header.Get("X-Llmgate-Backend")
	r.retryAfter = resp.Header.Get("Retry-After")
	body, err := io.ReadAll(resp.Body)
	r.latency = time.Since(r.start)
	if err != nil {
		r.err = err
		r.out = aborted
		if isTimeout(err) {
			r.out = hung
		}
		return r
	}
	r.out, r.errCode, r.jsonErr = classify(resp, body)
	return r
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// classify tells what a complete HTTP response amounts to.
func classify(resp *http.Response, body []byte) (out outcome, code string, jsonErr bool) {
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return classifyStream(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var v map[string]json.RawMessage
	if err := dec.Decode(&v); err != nil {
		if resp.StatusCode >= 400 {
			return errorAnswer, "", false // an error, but not in the JSON shape
		}
		return truncated, "", false
	}
	var more json.RawMessage
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return double, "", false
	}
	if e, ok := v["error"]; ok {
		var eb struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(e, &eb)
		return errorAnswer, fmt.Sprint(eb.Code), eb.Message != ""
	}
	if resp.StatusCode >= 300 {
		return errorAnswer, "", false
	}
	return okAnswer, "", false
}

// classifyStream reads an SSE body: one complete answer ends with
// data: [DONE]; one clear error ends with a data: {"error":...} event.
// Anything after the end, two ends, or chunks of two different completions
// is a double answer; no end at all is a silent truncation.
func classifyStream(body []byte) (outcome, string, bool) {
	ended, endedErr := false, false
	code := ""
	ids := map[string]bool{}
	for ev := range bytes.SplitSeq(body, []byte("\n\n")) {
		ev = bytes.TrimSpace(ev)
		if len(ev) == 0 {
			continue
		}
		var data []byte
		for line := range bytes.SplitSeq(ev, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data = append(data, bytes.TrimSpace(d)...)
			}
		}
		if len(data) == 0 {
			continue // a comment or an event with no data
		}
		if ended {
			return double, code, false
		}
		if string(data) == "[DONE]" {
			ended = true
			continue
		}
		var chunk struct {
			ID    string          `json:"id"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &chunk); err != nil {
			return truncated, "", false
		}
		if len(chunk.Error) > 0 {
			var eb struct {
				Code any `json:"code"`
			}
			_ = json.Unmarshal(chunk.Error, &eb)
			code = fmt.Sprint(eb.Code)
			ended, endedErr = true, true
			continue
		}
		if chunk.ID != "" {
			ids[chunk.ID] = true
		}
	}
	switch {
	case len(ids) > 1:
		return double, code, false
	case !ended:
		return truncated, "", false
	case endedErr:
		return errorAnswer, code, true
	}
	return okAnswer, "", false
}

// drive sends n requests from conc clients at once; request i is of kind kindOf(i).
// doer sends request i of kind k.
type doer interface{ do(k kind, i int) result }

func drive(c doer, n, conc int, kindOf func(int) kind) []result {
	results := make([]result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				results[i] = c.do(kindOf(i), i)
			}
		})
	}
	wg.Wait()
	return results
}

// driveUntil sends requests from conc clients until stop is closed.
func driveUntil(c doer, conc int, kindOf func(int) kind, stop <-chan struct{}) []result {
	var mu sync.Mutex
	var results []result
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1) - 1)
				r := c.do(kindOf(i), i)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(results, func(a, b result) int { return a.i - b.i })
	return results
}
