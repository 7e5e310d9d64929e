package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// request renders a whole HTTP/1.1 request once; every iteration writes the
// same bytes.
func request(host, path, key string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: llmgate-loadgen\r\n", path, host)
	if key != "" {
		fmt.Fprintf(&b, "api-key: %s\r\n", key)
	}
	fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

var (
	errMalformed = errors.New("malformed response")

	hContentLength    = []byte("content-length")
	hTransferEncoding = []byte("transfer-encoding")
	hConnection       = []byte("connection")
	vChunked          = []byte("chunked")
	vClose            = []byte("close")
)

// head is what a response's status line and headers say about its body.
type head struct {
	status    int
	length    int64 // -1: none given
	chunked   bool
	keepAlive bool
}

// readHead reads a status line and headers without allocating.
func readHead(br *bufio.Reader) (head, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return head{}, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return head{}, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	h := head{length: -1, keepAlive: line[7] == '1'}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return head{}, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		h.status = h.status*10 + int(c-'0')
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return head{}, err
		}
		if len(line) <= 2 { // "\r\n" ends the headers
			return h, nil
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, hContentLength):
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || n < 0 {
				return head{}, fmt.Errorf("%w: content-length %q", errMalformed, val)
			}
			h.length = n
		case bytes.EqualFold(name, hTransferEncoding):
			h.chunked = containsFold(val, vChunked)
		case bytes.EqualFold(name, hConnection):
			if containsFold(val, vClose) {
				h.keepAlive = false
			}
		}
	}
}

func containsFold(s, sub []byte) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// readBody consumes the body h announces, feeding it to sc when sc is not
// nil. It reports whether the connection can carry another request.
func readBody(br *bufio.Reader, h head, sc *sse) (keepAlive bool, err error) {
	switch {
	case h.status/100 == 1 || h.status == 204 || h.status == 304:
		return h.keepAlive, nil
	case h.chunked:
		return h.keepAlive, readChunked(br, sc)
	case h.length >= 0:
		return h.keepAlive, readN(br, h.length, sc)
	default: // the body runs to the end of the connection
		err := readN(br, 1<<62, sc)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = nil
		}
		return false, err
	}
}

func readChunked(br *bufio.Reader, sc *sse) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		var size int64
		digits := 0
		for _, c := range line {
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			default:
				goto parsed
			}
			if digits++; digits > 15 {
				return fmt.Errorf("%w: chunk size %q", errMalformed, line)
			}
			size = size<<4 | int64(d)
		}
	parsed:
		if digits == 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 { // last chunk, then trailers up to a blank line
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(line) <= 2 {
					return nil
				}
			}
		}
		if err := readN(br, size, sc); err != nil {
			return err
		}
		if line, err := br.ReadSlice('\n'); err != nil {
			return err
		} else if len(line) > 2 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
		}
	}
}

// readN discards n bytes, handing each buffered piece to sc as it arrives.
func readN(br *bufio.Reader, n int64, sc *sse) error {
	for n > 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := min(n, int64(br.Buffered()))
		if sc != nil {
			b, _ := br.Peek(int(k))
			sc.feed(b, time.Now())
		}
		_, _ = br.Discard(int(k))
		n -= k
	}
	return nil
}

// sse counts server-sent events (each ends with a blank line) and times
// them against start. The zero value is not ready: call reset.
type sse struct {
	start  time.Time
	events int
	first  time.Duration // start to the end of the first event
	last   time.Time     // end of the latest event
	maxGap time.Duration // largest time between two consecutive events
	nl     bool          // the last byte other than '\r' was a '\n' ending a line
}

func (s *sse) reset(start time.Time) { *s = sse{start: start} }

func (s *sse) feed(b []byte, now time.Time) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		if len(bytes.Trim(seg, "\r")) > 0 {
			s.nl = false
		}
		if i < 0 {
			return
		}
		if s.nl {
			s.event(now)
			s.nl = false
		} else {
			s.nl = true
		}
		b = b[i+1:]
	}
}

func (s *sse) event(now time.Time) {
	if s.events == 0 {
		s.first = now.Sub(s.start)
	} else if g := now.Sub(s.last); g > s.maxGap {
		s.maxGap = g
	}
	s.events++
	s.last = now
}
