// Package tracing traces requests with OpenTelemetry: a server span per
// client request (continuing the client's W3C trace context) and a client
// span per upstream attempt, whose context goes upstream in traceparent.
//
// It is built as an http.Handler middleware and an http.RoundTripper
// wrapper, so the proxy needs no tracing code. It never touches
// OpenTelemetry's global provider or propagator; an OTLP exporter sets the
// global error handler, the exporter's only way to report a failure.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// scope names the instrumentation in every span.
const scope = "github.com/llmgate/llmgate"

// Options configures New.
type Options struct {
	// Endpoint is the OTLP/HTTP collector, e.g. http://127.0.0.1:4318; a URL
	// without a path gets /v1/traces. Used when Exporter is nil.
	Endpoint string
	// ServiceName is the service.name resource attribute. Empty: "llmgate".
	ServiceName string
	// Version is the service.version resource attribute. Empty: none.
	Version string
	// SampleRatio is the fraction, 0 to 1, of new traces recorded; a
	// client's sampled flag is always followed (parent-based), so 0 records
	// only what callers sampled. Nil: 1.
	SampleRatio *float64
	// Exporter replaces the OTLP exporter (tests use an in-memory one).
	// Its spans are exported synchronously as they end.
	Exporter sdktrace.SpanExporter
	// Logger receives the OTLP exporter's errors (a collector that cannot
	// be reached), at most one line per ErrorEvery. Nil: they are dropped.
	Logger *slog.Logger
	// Provider, when set, makes the spans instead of a provider built here
	// (the fields above are then unused); Shutdown leaves it running.
	Provider trace.TracerProvider
}

// Tracer creates the gateway's spans. Safe for concurrent use.
type Tracer struct {
	tp   *sdktrace.TracerProvider // nil when Options.Provider was given
	tr   trace.Tracer
	prop propagation.TextMapPropagator
}

// New returns a Tracer exporting to opts.Exporter or, if nil, to the OTLP
// endpoint in batches. Shutdown flushes and stops it.
func New(opts Options) (*Tracer, error) {
	if opts.Provider != nil {
		return &Tracer{tr: opts.Provider.Tracer(scope), prop: propagation.TraceContext{}}, nil
	}
	ratio := 1.0
	if opts.SampleRatio != nil {
		ratio = *opts.SampleRatio
		if !(ratio >= 0 && ratio <= 1) { // NaN too
			return nil, fmt.Errorf("tracing: sample ratio %v: must be between 0 and 1", ratio)
		}
	}
	var sp sdktrace.SpanProcessor
	if opts.Exporter != nil {
		sp = sdktrace.NewSimpleSpanProcessor(opts.Exporter)
	} else {
		ep, err := endpointURL(opts.Endpoint)
		if err != nil {
			return nil, err
		}
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(ep))
		if err != nil {
			return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
		}
		// The exporter reports a failed export through OpenTelemetry's
		// one global error handler, whose default prints a plain line on
		// stderr, among the gateway's JSON lines.
		otel.SetErrorHandler(&errorLog{log: opts.Logger})
		sp = sdktrace.NewBatchSpanProcessor(exp)
	}
	name := opts.ServiceName
	if name == "" {
		name = "llmgate"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return &Tracer{tp: tp, tr: tp.Tracer(scope), prop: propagation.TraceContext{}}, nil
}

// ErrorEvery is the least time between two logged exporter errors.
const ErrorEvery = 30 * time.Second

// errorLog logs OpenTelemetry's errors, at most one per ErrorEvery with the
// count of those not logged since.
type errorLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (e *errorLog) Handle(err error) {
	if e.log == nil {
		return
	}
	e.mu.Lock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < ErrorEvery {
		e.dropped++
		e.mu.Unlock()
		return
	}
	dropped := e.dropped
	e.last, e.dropped = now, 0
	e.mu.Unlock()
	e.log.Warn("tracing export failed", slog.String("error", err.Error()), slog.Int("not_logged_since", dropped))
}

// endpointURL checks an OTLP/HTTP endpoint and gives it the traces path.
func endpointURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("tracing: no endpoint")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// (The value is not repeated: an endpoint URL may carry credentials.)
		return "", errors.New("tracing: endpoint: must be an http or https URL with a host")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
