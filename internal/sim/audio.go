package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"time"
)

const (
	maxFieldBytes        = 64 << 10 // one multipart form field other than the file
	audioBytesPerSecond  = 32000    // 16 kHz 16-bit mono, for the reported duration
	audioFormatJSON      = "json"
	audioFormatVerbose   = "verbose_json"
	audioFormatText      = "text"
	audioFormatSubRip    = "srt"
	audioFormatWebVTTCue = "vtt"
)

// parseAudio reads a multipart/form-data transcription or translation request. It streams the
// file through a hash instead of buffering it.
func parseAudio(w http.ResponseWriter, r *http.Request, op operation) (*call, *apiError) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return nil, badRequest("", "Invalid Content-Type: expected multipart/form-data with a boundary.")
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, maxBodyBytes), params["boundary"])
	c := &call{op: op, prompt: newPrompt(), prompts: 1, n: 1, audioFormat: audioFormatJSON}
	file := fnv.New64a()
	sawFile := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, multipartError(err)
		}
		if e := c.readPart(part, file, &sawFile); e != nil {
			return nil, e
		}
	}
	if !sawFile {
		return nil, badRequest("file", "'file' is a required property.")
	}
	switch c.audioFormat {
	case audioFormatJSON, audioFormatVerbose, audioFormatText, audioFormatSubRip, audioFormatWebVTTCue:
	default:
		return nil, badRequest("response_format", "'%s' is not one of ['json', 'text', 'srt', "+
			"'verbose_json', 'vtt'].", c.audioFormat)
	}
	c.prompt.hash = hashUint(c.prompt.hash, file.Sum64())
	c.prompt.tokens = 0 // audio is charged as a request only
	return c, nil
}

// readPart consumes one form part into c.
func (c *call) readPart(part *multipart.Part, file io.Writer, sawFile *bool) *apiError {
	defer part.Close()
	name := part.FormName()
	if name == "file" {
		n, err := io.Copy(file, part)
		if err != nil {
			return multipartError(err)
		}
		c.audioBytes += n
		*sawFile = true
		return nil
	}
	v, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return multipartError(err)
	}
	if len(v) > maxFieldBytes {
		return badRequest(name, "Form field '%s' is too long.", name)
	}
	switch name {
	case "model":
		c.model = string(v)
	case "response_format":
		if len(v) > 0 {
			c.audioFormat = string(v)
		}
	case "prompt":
		c.prompt.addText(string(v))
	}
	return nil
}

func multipartError(err error) *apiError {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return errTooLarge
	}
	return badRequest("", "Could not read the multipart/form-data body.")
}

type audioSegmentJSON struct {
	ID               int     `json:"id"`
	Seek             int     `json:"seek"`
	Start            float64 `json:"start"`
	End              float64 `json:"end"`
	Text             string  `json:"text"`
	Tokens           []int   `json:"tokens"`
	Temperature      float64 `json:"temperature"`
	AvgLogprob       float64 `json:"avg_logprob"`
	CompressionRatio float64 `json:"compression_ratio"`
	NoSpeechProb     float64 `json:"no_speech_prob"`
}

type audioVerboseJSON struct {
	Task     string             `json:"task"`
	Language string             `json:"language"`
	Duration float64            `json:"duration"`
	Text     string             `json:"text"`
	Segments []audioSegmentJSON `json:"segments"`
}

// transcribe answers a transcription or translation request in its response_format.
func (s *Server) transcribe(x *exchange) {
	c := x.call
	ch := newChoice(s.seed, &c.prompt, 0, 0)
	text := ch.text()
	seconds := math.Round(float64(c.audioBytes)/audioBytesPerSecond*100) / 100
	var (
		body        []byte
		err         error
		contentType = "application/json"
	)
	switch c.audioFormat {
	case audioFormatVerbose:
		task := "transcribe"
		if c.op == opTranslations {
			task = "translate"
		}
		body, err = json.Marshal(audioVerboseJSON{
			Task: task, Language: "english", Duration: seconds, Text: text,
			Segments: []audioSegmentJSON{{End: seconds, Text: " " + text, Tokens: []int{},
				AvgLogprob: -0.25, CompressionRatio: 1.2, NoSpeechProb: 0.01}},
		})
	case audioFormatText:
		body, contentType = []byte(text+"\n"), "text/plain; charset=utf-8"
	case audioFormatSubRip:
		body = fmt.Appendf(nil, "1\n00:00:00,000 --> %s\n%s\n\n", cueTime(seconds, ','), text)
		contentType = "text/plain; charset=utf-8"
	case audioFormatWebVTTCue:
		body = fmt.Appendf(nil, "WEBVTT\n\n00:00:00.000 --> %s\n%s\n\n", cueTime(seconds, '.'), text)
		contentType = "text/vtt; charset=utf-8"
	default:
		body, err = json.Marshal(struct {
			Text string `json:"text"`
		}{text})
	}
	if err != nil {
		s.writeError(x.w, errInternal)
		return
	}
	s.answer(x, contentType, body, ch.n)
}

// cueTime formats seconds as hh:mm:ss<sep>mmm.
func cueTime(seconds float64, sep byte) string {
	d := time.Duration(seconds * float64(time.Second)).Round(time.Millisecond)
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	sec, ms := (d%time.Minute)/time.Second, (d%time.Second)/time.Millisecond
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", h, m, sec, sep, ms)
}
