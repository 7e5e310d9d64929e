package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
)

// chunkedBody reads a chunked response body (RFC 9112 §7.1) straight from
// the connection's buffered reader, for a head fastResponse parsed: an
// SSE stream's events then pass no framing layer but this one. It reads
// what the standard library's body reads from the same bytes
// (FuzzFastResponse checks that): the same data, ended by io.EOF after the
// last chunk and its trailer section, or by an error where the framing
// breaks: a size line that is not hex digits (with optional extensions
// after ';', which are discarded), not ended by CRLF or longer than the
// reader's buffer; chunk data not followed by CRLF; more framing than data
// allows (see overhead); a stream that ends early. A trailer section,
// rare, goes to resp.Trailer as net/http puts it there.
//
// Having returned data, a Read never waits for the next size line: an
// event is handed on as soon as its chunk is read.
type chunkedBody struct {
	r        *bufio.Reader
	resp     *http.Response // gets the trailer section
	left     uint64         // unread bytes of the current chunk
	overhead int64          // framing read beyond what the data allows
	crlf     bool           // the current chunk's data is read: its CRLF is next
	err      error          // sticky: io.EOF after the trailer, or what broke the framing
}

// Framing allowance: a sender may spend 16 bytes of framing per chunk
// plus twice the chunk's data (one byte per chunk costs 5); what goes
// beyond adds up, and more than maxOverhead in all ends the body, so that
// chunk extensions cannot make a body mostly framing.
const (
	chunkAllowance = 16
	maxOverhead    = 16 << 10
)

var (
	errChunkLine     = errors.New("h1: chunk size line longer than the read buffer")
	errChunkBareLF   = errors.New("h1: chunk size line ends with a bare LF")
	errChunkCR       = errors.New("h1: CR inside a chunk size line")
	errChunkSize     = errors.New("h1: chunk size is not hex digits")
	errChunkTooLarge = errors.New("h1: chunk size larger than 16 hex digits")
	errChunkEnd      = errors.New("h1: chunk data not followed by CRLF")
	errChunkOverhead = errors.New("h1: chunked body is mostly framing")
	errTrailerEOF    = errors.New("h1: unexpected EOF reading the trailer section")
	errTrailerLong   = errors.New("h1: trailer section longer than the read buffer")
)

func (c *chunkedBody) Read(p []byte) (n int, err error) {
	for c.err == nil {
		if c.crlf {
			if n > 0 && c.r.Buffered() < 2 {
				break // data in hand: do not wait for the CRLF
			}
			c.readCRLF()
			continue
		}
		if c.left == 0 {
			if n > 0 && !c.lineBuffered() {
				break // data in hand: do not wait for the next size line
			}
			c.readSize()
			continue
		}
		if len(p) == 0 {
			break
		}
		m, rerr := c.r.Read(p[:min(uint64(len(p)), c.left)])
		n += m
		p = p[m:]
		c.left -= uint64(m)
		switch {
		case rerr == io.EOF:
			c.err = io.ErrUnexpectedEOF
		case rerr != nil:
			c.err = rerr
		case c.left == 0:
			c.crlf = true
		}
	}
	return n, c.err
}

func (*chunkedBody) Close() error { return nil }

// lineBuffered reports whether a whole line is buffered.
func (c *chunkedBody) lineBuffered() bool {
	b, _ := c.r.Peek(c.r.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// readCRLF reads the CRLF that ends a chunk's data.
func (c *chunkedBody) readCRLF() {
	b, err := c.r.Peek(2)
	switch {
	case len(b) == 2 && b[0] == '\r' && b[1] == '\n':
		_, _ = c.r.Discard(2)
		c.crlf = false
	case len(b) == 2:
		c.err = errChunkEnd
	case err == io.EOF:
		c.err = io.ErrUnexpectedEOF
	default:
		c.err = err
	}
}

// readSize reads a chunk's size line; a zero size ends the data, and the
// trailer section is read at once so that the connection is free when
// io.EOF is returned.
func (c *chunkedBody) readSize() {
	line, err := c.r.ReadSlice('\n')
	switch {
	case err == io.EOF:
		c.err = io.ErrUnexpectedEOF
		return
	case err == bufio.ErrBufferFull:
		c.err = errChunkLine
		return
	case err != nil:
		c.err = err
		return
	}
	cr := bytes.IndexByte(line, '\r')
	switch {
	case cr < 0:
		c.err = errChunkBareLF
		return
	case cr != len(line)-2:
		c.err = errChunkCR
		return
	}
	c.overhead += int64(len(line))
	size := trimTrailingOWS(line[:cr]) // blanks before the size stay invalid, as in net/http
	if i := bytes.IndexByte(size, ';'); i >= 0 {
		size = size[:i] // an extension: discarded (what precedes ';' is the size as it is)
	}
	if c.left, c.err = parseHex(size); c.err != nil {
		return
	}
	c.overhead = max(c.overhead-chunkAllowance-2*int64(c.left), 0)
	if c.overhead > maxOverhead {
		c.err = errChunkOverhead
		return
	}
	if c.left == 0 {
		c.err = c.readTrailer()
	}
}

// parseHex reads a chunk size: 1 to 16 hex digits.
func parseHex(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errChunkSize
	}
	if len(b) > 16 {
		return 0, errChunkTooLarge
	}
	var n uint64
	for _, d := range b {
		v := hexDigit(d)
		if v < 0 {
			return 0, errChunkSize
		}
		n = n<<4 | uint64(v)
	}
	return n, nil
}

func hexDigit(d byte) int {
	switch {
	case '0' <= d && d <= '9':
		return int(d - '0')
	case 'a' <= d && d <= 'f':
		return int(d-'a') + 10
	case 'A' <= d && d <= 'F':
		return int(d-'A') + 10
	}
	return -1
}

// readTrailer reads the trailer section after the last chunk: usually
// just its blank line. Fields, if any, must end (blank line) within the
// reader's buffer, so that an endless trailer cannot grow memory.
func (c *chunkedBody) readTrailer() error {
	b, err := c.r.Peek(2)
	if len(b) == 2 && b[0] == '\r' && b[1] == '\n' {
		_, _ = c.r.Discard(2)
		return io.EOF
	}
	if len(b) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if !blankLineAhead(c.r) {
		return errTrailerLong
	}
	hdr, err := textproto.NewReader(c.r).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	c.resp.Trailer = http.Header(hdr) // none announced (fastResponse takes no Trailer header): none before
	return io.EOF
}

// blankLineAhead reports whether a CRLF CRLF ends within what r can
// buffer; it reads more into the buffer as needed.
func blankLineAhead(r *bufio.Reader) bool {
	for n := 4; ; n++ {
		b, err := r.Peek(n)
		if bytes.HasSuffix(b, crlf2) {
			return true
		}
		if err != nil {
			return false
		}
	}
}
