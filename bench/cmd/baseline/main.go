// Command baseline is the benchmark's yardstick: the standard library's
// httputil.ReverseProxy to one upstream, with a Transport tuned for the load
// and nothing else (no auth, no routing, no retries, no logs). What llmgate
// costs beyond it is what its features cost.
//
//	baseline -listen 127.0.0.1:18404 -upstream http://127.0.0.1:18401 -conns 256
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		log.SetFlags(0)
		log.Fatalf("baseline: %v", err)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:18404", "`address` to serve on")
	target := flag.String("upstream", "http://127.0.0.1:18401", "upstream base `URL`")
	conns := flag.Int("conns", 256, "idle upstream connections kept (size it to the client concurrency)")
	verbose := flag.Bool("v", false, "log proxy errors to stderr")
	fix := flag.Bool("end-bodies", true, "end request bodies at their Content-Length (avoids golang/go#40747)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream: %q is not an absolute URL", *target)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	rp.Transport = &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          *conns,
		MaxIdleConnsPerHost:   *conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 120 * time.Second,
		DisableCompression:    true,
	}
	// ReverseProxy flushes text/event-stream responses after every write on its own.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	if *verbose {
		rp.ErrorLog = log.New(os.Stderr, "baseline: ", log.LstdFlags|log.Lmicroseconds)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var h http.Handler = rp
	if *fix {
		h = endBodies(rp)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("baseline listening on http://%s -> %s\n", ln.Addr(), u)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return srv.Close()
	}
}

// endBodies ends each request body at its declared length. After copying a
// body of known length, the Transport reads it once more to check for excess;
// by then the server may have closed the inbound body (it does when the
// response headers are written), that read fails and the Transport drops the
// upstream connection, cutting a stream in flight (golang/go#40747).
func endBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.ContentLength > 0 {
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.LimitReader(r.Body, r.ContentLength), r.Body}
		}
		next.ServeHTTP(w, r)
	})
}
