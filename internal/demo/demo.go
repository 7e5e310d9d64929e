// Package demo runs, in one process, two simulated Azure OpenAI regions and
// the gateway in front of them with the API Management setup: oai-se takes
// 75 % of traffic, oai-fr 25 %, the same retry policy, and modest quotas so
// that throttling and failover show up under a little load.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/cli"
	"github.com/llmgate/llmgate/internal/config"
	"github.com/llmgate/llmgate/internal/sim"
)

// Options configures a demo. Zero fields take the defaults documented on each.
type Options struct {
	// Listen is the gateway's address. Default 127.0.0.1:8080; if taken, a free port.
	Listen string
	// Key is the client key. Default: random.
	Key string
	// TPM is each region's tokens-per-minute quota. Default 8000.
	TPM int
	// RPM is each region's requests-per-minute quota. Default 48.
	RPM int
	// TTFT and TokenInterval shape the simulated latency. Defaults 200ms and 20ms.
	TTFT, TokenInterval time.Duration
	// RetryInterval, RetryDelta and RetryMax are the backoff (defaults 1s, 1s, 8s).
	RetryInterval, RetryDelta, RetryMax time.Duration
	// RetryMode is retry.mode: "smart" (default: a switch to a region not
	// yet tried goes at once) or "apim" (API Management's timing: the
	// backoff before every retry).
	RetryMode string
	// Logger receives the gateway's access log. Nil discards.
	Logger *slog.Logger
}

// Demo is a running demo. Close stops it.
type Demo struct {
	URL      string // the gateway's base URL
	Key      string // the client key
	AdminKey string // the admin key (status page, metrics)
	SE, FR   *sim.Server
	// SEURL and FRURL are the regions' base URLs (their /sim admin
	// endpoints take faults and outages at run time).
	SEURL, FRURL string
	// SEKey and FRKey are the regions' own keys, which their /sim admin
	// routes ask for (the gateway holds them as its backends' api_key).
	SEKey, FRKey string

	cancel context.CancelFunc
	done   chan error
	sims   []*http.Server
}

// Start starts the two regions and the gateway.
func Start(ctx context.Context, o Options) (*Demo, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.Key == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		o.Key = "demo-" + hex.EncodeToString(b[:])
	}
	o.TPM = cmpOr(o.TPM, 8000)
	o.RPM = cmpOr(o.RPM, 48)
	o.TTFT = cmpOr(o.TTFT, 200*time.Millisecond)
	o.TokenInterval = cmpOr(o.TokenInterval, 20*time.Millisecond)
	o.RetryInterval = cmpOr(o.RetryInterval, time.Second)
	o.RetryDelta = cmpOr(o.RetryDelta, time.Second)
	o.RetryMax = cmpOr(o.RetryMax, 8*time.Second)
	o.RetryMode = cmpOr(o.RetryMode, "smart")

	d := &Demo{Key: o.Key, done: make(chan error, 1)}
	var ab [12]byte
	_, _ = rand.Read(ab[:])
	d.AdminKey = "admin-" + hex.EncodeToString(ab[:])
	regionKeys := map[string]string{}
	urls := map[string]string{}
	for i, region := range []string{"se", "fr"} {
		var b [8]byte
		_, _ = rand.Read(b[:])
		key := hex.EncodeToString(b[:])
		s := sim.New(sim.Options{Key: key, TPM: o.TPM, RPM: o.RPM, TTFT: o.TTFT, TokenInterval: o.TokenInterval,
			Seed: int64(i + 1), Region: region})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.closeSims()
			return nil, fmt.Errorf("demo: region %s: %w", region, err)
		}
		hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		d.sims = append(d.sims, hs)
		regionKeys[region] = key
		urls[region] = "http://" + ln.Addr().String()
		if region == "se" {
			d.SEURL, d.SEKey = urls[region], key
		} else {
			d.FRURL, d.FRKey = urls[region], key
		}
		if region == "se" {
			d.SE = s
		} else {
			d.FR = s
		}
	}
	yaml := fmt.Sprintf(`
listen: %q
keys:
  - name: demo
    key: ${DEMO_KEY}
admin:
  key: ${ADMIN_KEY}
backends:
  - name: oai-se
    url: %s
    api_key: ${SE_KEY}
    weight: 75
  - name: oai-fr
    url: %s
    api_key: ${FR_KEY}
    weight: 25
retry:
  count: 5
  interval: %s
  delta: %s
  max_interval: %s
  first_fast_retry: false
  mode: %s
# API Management's setup routes blind: no steering by the regions' remaining
# capacity, so a region's quota runs out and the retries show (steering, on
# by default elsewhere, would move traffic before the 429s happen).
routing:
  capacity_steering: false
`, o.Listen, urls["se"], urls["fr"], o.RetryInterval, o.RetryDelta, o.RetryMax, o.RetryMode)
	env := map[string]string{"DEMO_KEY": o.Key, "ADMIN_KEY": d.AdminKey, "SE_KEY": regionKeys["se"], "FR_KEY": regionKeys["fr"]}
	cfg, err := config.Parse("demo", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		d.closeSims()
		return nil, fmt.Errorf("demo: %w", err)
	}
	a, err := app.New(cfg, app.Options{Logger: o.Logger})
	if err != nil {
		d.closeSims()
		return nil, fmt.Errorf("demo: %w", err)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		// The usual port is taken: any free one will do for a demo.
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.closeSims()
			return nil, fmt.Errorf("demo: listen: %w", err)
		}
	}
	d.URL = "http://" + ln.Addr().String()
	gctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	go func() { d.done <- a.Serve(gctx, ln) }()
	return d, nil
}

// modeNote says what a retry mode means, for the demo's banner.
func modeNote(mode string) string {
	if mode == "apim" {
		return "apim: the backoff before every retry, as API Management waits"
	}
	return mode + ": a switch to the other region goes at once; the backoff applies to a region called again (-retry-mode apim: API Management's timing)"
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (d *Demo) closeSims() {
	for _, s := range d.sims {
		_ = s.Close()
	}
	for _, s := range []*sim.Server{d.SE, d.FR} {
		if s != nil {
			s.Close()
		}
	}
}

// Close stops the gateway (draining it) and the regions.
func (d *Demo) Close() error {
	d.cancel()
	err := <-d.done
	d.closeSims()
	return err
}

// Run is the `llmgate demo` command. For -h it writes the usage to stdout
// and returns flag.ErrHelp; a command-line mistake returns an error wrapping
// cli.ErrUsage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: llmgate demo [flags]\n\n"+
			"Runs two simulated Azure OpenAI regions (oai-se, oai-fr) behind the gateway until Ctrl-C.\n\nFlags:")
		fs.PrintDefaults()
	}
	var o Options
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "gateway address (a free port if taken)")
	fs.StringVar(&o.Key, "key", "", "client key (default: random)")
	fs.IntVar(&o.TPM, "tpm", 8000, "tokens per minute of each region")
	fs.IntVar(&o.RPM, "rpm", 48, "requests per minute of each region")
	fs.StringVar(&o.RetryMode, "retry-mode", "smart", "retry timing: smart (a switch to a fresh region goes at once) or apim (API Management's: the backoff before every retry)")
	if err := cli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	d, err := Start(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `llmgate demo: two simulated Azure OpenAI regions behind the gateway
  oai-se: weight 75, %d TPM, %d RPM, %s (simulator key %s)
  oai-fr: weight 25, %d TPM, %d RPM, %s (simulator key %s)
  retry: 5 retries, interval 1s, delta 1s, max-interval 8s, first-fast-retry false (API Management's policy),
         mode %s

gateway: %s
client key: %s

Try a chat completion:

  curl -s '%s/openai/deployments/gpt-4/chat/completions?api-version=2024-02-01' \
    -H 'api-key: %s' -H 'content-type: application/json' \
    -d '{"messages":[{"role":"user","content":"Hello!"}],"max_tokens":50}' -i

and a stream:

  curl -sN '%s/openai/deployments/gpt-4/chat/completions?api-version=2024-02-01' \
    -H 'api-key: %s' -H 'content-type: application/json' \
    -d '{"messages":[{"role":"user","content":"Hello!"}],"max_tokens":50,"stream":true}'

Send a few dozen quickly to see throttling and failover in the log below
(x-llmgate-backend, x-llmgate-attempts and x-llmgate-trail show each request's path):

  for i in $(seq 40); do curl -s -o /dev/null -w '%%{http_code} ' '%s/openai/deployments/gpt-4/chat/completions?api-version=2024-02-01' \
    -H 'api-key: %s' -H 'content-type: application/json' -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":400}' & done; wait; echo

Take a region down for 10 s, or make it throttle, and watch the gateway route around it
(each simulator's /sim routes take its own key):

  curl -s -X POST '%s/sim/outage?for=10s' -H 'api-key: %s'
  curl -s -X PUT %s/sim/faults -H 'api-key: %s' -d '{"fail_429":0.5}'

Live status page: %s/status#key=%s
Ctrl-C stops.
`, o.TPM, o.RPM, d.SEURL, d.SEKey, o.TPM, o.RPM, d.FRURL, d.FRKey, modeNote(o.RetryMode), d.URL, d.Key, d.URL, d.Key, d.URL, d.Key, d.URL, d.Key,
		d.SEURL, d.SEKey, d.FRURL, d.FRKey, d.URL, d.AdminKey)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping...")
	if err := d.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}
