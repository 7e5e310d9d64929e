package sim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/llmgate/llmgate/internal/cli"
)

// shutdownTimeout bounds the graceful shutdown of Run.
const shutdownTimeout = 5 * time.Second

// Run implements `llmgate simulate`: it parses args, listens, prints one line
// "llmgate simulate listening on http://ADDR" to stdout, serves until ctx is cancelled, then
// shuts down gracefully and returns nil. Logs go to stderr. For -h it writes the usage to
// stdout and returns flag.ErrHelp; a command-line mistake returns an error wrapping cli.ErrUsage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: llmgate simulate [flags]\n\n"+
			"Serves a simulated Azure OpenAI resource with quotas, latency and injected faults.\n"+
			"Admin endpoint: GET|PUT|POST|DELETE /sim/faults, GET|POST /sim/outage?for=10s, GET /sim/stats.\n"+
			"Durations take Go units (300ms, 1m30s) or a plain number of seconds (0.3, 90).\n\nFlags:")
		fs.PrintDefaults()
	}
	var (
		opts     Options
		f        = &opts.Faults
		listen   = fs.String("listen", "127.0.0.1:8089", "`address` to listen on (port 0 picks a free one)")
		logLevel = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
		outage   time.Duration
	)
	opts.Window, f.RetryAfter429, f.SlowHeadersDelay = time.Minute, time.Second, 2*time.Second
	span := func(d *time.Duration, name, usage string) { fs.Var((*spanFlag)(d), name, usage) }
	span(&outage, "outage", "start with an outage of this `duration` (every request fails)")
	fs.StringVar(&opts.Key, "key", "", "API `key` required as api-key or Authorization: Bearer (empty: none)")
	fs.IntVar(&opts.TPM, "tpm", 0, "tokens per window per deployment (0: unlimited)")
	fs.IntVar(&opts.RPM, "rpm", 0, "requests per window per deployment (0: unlimited)")
	span(&opts.Window, "window", "`duration` of the sliding quota window")
	span(&opts.TTFT, "ttft", "`duration` to the first token")
	span(&opts.TokenInterval, "token-interval", "`duration` between tokens")
	fs.Int64Var(&opts.Seed, "seed", 0, "seed of generated content and fault draws")
	fs.StringVar(&opts.Region, "region", "", "region sent in x-ms-region (empty: no header)")
	fs.Float64Var(&f.Fail500, "fail-500", 0, "fraction of requests answered 500")
	fs.Float64Var(&f.Fail503, "fail-503", 0, "fraction of requests answered 503")
	fs.Float64Var(&f.Fail429, "fail-429", 0, "fraction of requests answered 429 regardless of quota")
	span(&f.RetryAfter429, "fail-429-retry-after",
		"retry-after `duration` advertised by injected 429s (negative: no retry-after headers)")
	fs.Float64Var(&f.Reset, "reset", 0, "fraction of requests whose connection is reset")
	fs.Float64Var(&f.Hang, "hang", 0, "fraction of requests never answered")
	fs.Float64Var(&f.SlowHeaders, "slow-headers", 0, "fraction of requests whose headers are delayed")
	span(&f.SlowHeadersDelay, "slow-headers-delay", "`duration` by which -slow-headers delays answers")
	fs.Float64Var(&f.StreamCut, "stream-cut", 0, "fraction of answers aborted halfway, without [DONE]")
	fs.Float64Var(&f.ErrorEvent, "error-event", 0, "fraction of streams answered 200 with only an error event")
	fs.BoolVar(&f.AuthBreak, "auth-break", false, "answer 401 to every request")
	fs.BoolVar(&f.OutageReset, "outage-reset", false, "during an outage reset connections instead of answering 503")
	if err := cli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("simulate: -log-level: %w", err)
	}
	if err := validateOptions(&opts, outage); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	handler := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	opts.Logger = slog.New(handler)

	s := New(opts)
	defer s.Close()
	if outage > 0 {
		s.StartOutage(outage)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("simulate: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "llmgate simulate listening on http://%s\n", ln.Addr())
	opts.Logger.Info("simulator started", slog.String("addr", ln.Addr().String()),
		slog.Int("tpm", opts.TPM), slog.Int("rpm", opts.RPM), slog.Bool("key", opts.Key != ""))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("simulate: serve: %w", err)
	case <-ctx.Done():
	}
	s.Close() // release hung requests and latency waits so that connections go idle
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-served
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("simulate: shutdown: %w", err)
	}
	opts.Logger.Info("simulator stopped")
	return nil
}

// validateOptions reports every invalid flag value, joined.
func validateOptions(o *Options, outage time.Duration) error {
	var errs []error
	if o.TPM < 0 {
		errs = append(errs, fmt.Errorf("-tpm: negative %d", o.TPM))
	}
	if o.RPM < 0 {
		errs = append(errs, fmt.Errorf("-rpm: negative %d", o.RPM))
	}
	if o.Window <= 0 {
		errs = append(errs, fmt.Errorf("-window: must be positive, got %v", o.Window))
	}
	if o.TTFT < 0 {
		errs = append(errs, fmt.Errorf("-ttft: negative %v", o.TTFT))
	}
	if o.TokenInterval < 0 {
		errs = append(errs, fmt.Errorf("-token-interval: negative %v", o.TokenInterval))
	}
	if outage < 0 {
		errs = append(errs, fmt.Errorf("-outage: negative %v", outage))
	}
	if err := o.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
