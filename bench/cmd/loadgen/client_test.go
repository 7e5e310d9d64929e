package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		raw        string
		wantStatus int
		wantKeep   bool
		wantEvents int
		wantErr    error
	}{
		{
			name:       "content-length",
			raw:        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello",
			wantStatus: 200, wantKeep: true,
		},
		{
			name:       "chunked stream",
			raw:        "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n7\r\ndata: a\r\n2\r\n\n\n\r\nc;ext=1\r\ndata: b\n\ndat\r\n7\r\na: [DON\r\n4\r\nE]\n\n\r\n0\r\nTrailer: x\r\n\r\n",
			wantStatus: 200, wantKeep: true, wantEvents: 3,
		},
		{
			name:       "connection close",
			raw:        "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
			wantStatus: 429, wantKeep: false,
		},
		{
			name:       "until EOF",
			raw:        "HTTP/1.0 200 OK\r\n\r\ndata: x\r\n\r\n",
			wantStatus: 200, wantKeep: false, wantEvents: 1,
		},
		{
			name:    "truncated body",
			raw:     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "bad status line",
			raw:     "HTTP/2 200\r\n\r\n",
			wantErr: errMalformed,
		},
		{
			name:    "bad chunk size",
			raw:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
			wantErr: errMalformed,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			br := bufio.NewReaderSize(strings.NewReader(c.raw), 48) // small: bodies arrive in pieces
			var sc sse
			sc.reset(time.Now())
			h, err := readHead(br)
			keep := false
			if err == nil {
				keep, err = readBody(br, h, &sc)
			}
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("got err %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v, want nil", err)
			}
			if h.status != c.wantStatus || keep != c.wantKeep || sc.events != c.wantEvents {
				t.Fatalf("got status %d keep %v events %d, want %d %v %d",
					h.status, keep, sc.events, c.wantStatus, c.wantKeep, c.wantEvents)
			}
			if _, err := br.Peek(1); !errors.Is(err, io.EOF) {
				t.Fatalf("got %v after the response, want EOF (all consumed)", err)
			}
		})
	}
}

func TestSSEGaps(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	var s sse
	s.reset(t0)
	s.feed([]byte("data: 1\n"), t0.Add(1*time.Millisecond))
	s.feed([]byte("\ndata: 2\n\n"), t0.Add(3*time.Millisecond))
	s.feed([]byte("data: 3\n\n"), t0.Add(10*time.Millisecond))
	if s.events != 3 || s.first != 3*time.Millisecond || s.maxGap != 7*time.Millisecond {
		t.Fatalf("got events %d first %v maxGap %v, want 3, 3ms, 7ms", s.events, s.first, s.maxGap)
	}
}
