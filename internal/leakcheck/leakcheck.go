// Package leakcheck finds goroutines a test suite left behind: those of
// llmgate's own packages and of net/http servers and transports. Test
// packages call Wait from TestMain after m.Run.
package leakcheck

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"
)

// suspicious marks a goroutine that should be gone when the tests are.
var suspicious = []string{
	"github.com/llmgate/llmgate/internal/",
	"net/http.(*conn).serve",
	"net/http.(*persistConn)",
}

// processWide are goroutines started once per process and kept on
// purpose: h1's watch of client connections (one epoll set).
var processWide = []string{
	"internal/h1.registrar(",
	"internal/h1.waitEvents(",
}

// Wait waits up to d for every suspicious goroutine to end, closing the
// default transport's idle connections meanwhile, and reports those left.
func Wait(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "TestMain") || strings.Contains(g, "leakcheck.Wait") || isProcessWide(g) {
				continue
			}
			for _, s := range suspicious {
				if strings.Contains(g, s) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutine(s) leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		time.Sleep(50 * time.Millisecond)
	}
}

func isProcessWide(g string) bool {
	for _, s := range processWide {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}
