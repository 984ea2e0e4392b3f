// Package tracing exports OpenTelemetry spans over OTLP (gRPC or HTTP):
// one server span per ShouldRateLimit call, continuing the trace context
// the caller sends in its gRPC metadata (W3C traceparent, or Zipkin's B3
// headers), and one child span per store round trip.
//
// Tracing is off unless settings.Tracing.Enabled; the caller then builds
// no Tracer, installs no gRPC stats handler and wraps no store, so a
// service without tracing pays nothing for it.
package tracing

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/envoy-rls/envoy-rls/internal/settings"
)

// DefaultServiceName names the service when neither the settings nor
// OTEL_SERVICE_NAME do.
const DefaultServiceName = "envoy-rls"

// rateLimitService prefixes the full method names that get a span; health
// checks and reflection do not.
const rateLimitService = "/envoy.service.ratelimit.v3.RateLimitService/"

// instrumentation names the tracer, as OpenTelemetry asks.
const instrumentation = "github.com/envoy-rls/envoy-rls/internal/tracing"

// Tracer owns the span pipeline: a tracer provider with a batching OTLP
// exporter, and the propagators that read the caller's trace context. It
// is safe for concurrent use; Shutdown flushes and stops it.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	prop   propagation.TextMapPropagator
	tracer trace.Tracer
}

// New builds a Tracer from cfg. getenv reads the standard variables that
// settings leave to OpenTelemetry (OTEL_EXPORTER_OTLP_PROTOCOL and
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL); the OTLP exporter and the SDK read
// the other OTEL_* variables themselves, once, here. New does not wait
// for the collector: spans are exported in the background.
func New(ctx context.Context, cfg settings.Tracing, getenv func(string) string) (*Tracer, error) {
	exp, err := newExporter(ctx, cfg, getenv)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if cfg.SamplingRate != 1 {
		// A caller's sampled flag is followed, as the reference does;
		// the rate applies to traces that start here.
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplingRate))))
	}
	// Otherwise the SDK's default: OTEL_TRACES_SAMPLER when set, else
	// parent-based always-on, which is a rate of 1.
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracer{
		tp: tp,
		// B3 first so that W3C traceparent wins when a caller sends both.
		prop:   propagation.NewCompositeTextMapPropagator(b3.New(), propagation.TraceContext{}, propagation.Baggage{}),
		tracer: tp.Tracer(instrumentation),
	}, nil
}

// protocol returns the OTLP transport: cfg's, else the standard
// variables', else "http" (the reference's default).
func protocol(cfg settings.Tracing, getenv func(string) string) (string, error) {
	p := cfg.Protocol
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p == "" {
			p = strings.TrimSpace(getenv(name))
		}
	}
	switch p {
	case "grpc":
		return "grpc", nil
	case "", "http", "http/protobuf":
		return "http", nil
	default:
		return "", fmt.Errorf("tracing: OTLP protocol %q: want grpc or http/protobuf", p)
	}
}

func newExporter(ctx context.Context, cfg settings.Tracing, getenv func(string) string) (*otlptrace.Exporter, error) {
	p, err := protocol(cfg, getenv)
	if err != nil {
		return nil, err
	}
	var exp *otlptrace.Exporter
	if p == "grpc" {
		var opts []otlptracegrpc.Option
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	} else {
		var opts []otlptracehttp.Option
		if cfg.Endpoint != "" {
			// A base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: the
			// signal's path is appended when it has none.
			u, err := url.Parse(cfg.Endpoint)
			if err != nil {
				return nil, fmt.Errorf("tracing: endpoint %q: %w", cfg.Endpoint, err)
			}
			if u.Path == "" || u.Path == "/" {
				u.Path = "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP %s exporter: %w", p, err)
	}
	return exp, nil
}

// newResource describes this process: service.name (cfg's, else
// OTEL_SERVICE_NAME, else envoy-rls), namespace, instance id (cfg's, else
// a random one per process) and OTEL_RESOURCE_ATTRIBUTES.
func newResource(ctx context.Context, cfg settings.Tracing) (*resource.Resource, error) {
	explicit := []attribute.KeyValue{attribute.String("service.instance.id", cfg.ServiceInstanceID)}
	if cfg.ServiceInstanceID == "" {
		id, err := randomID()
		if err != nil {
			return nil, err
		}
		explicit[0] = attribute.String("service.instance.id", id)
	}
	if cfg.ServiceName != "" {
		explicit = append(explicit, attribute.String("service.name", cfg.ServiceName))
	}
	if cfg.ServiceNamespace != "" {
		explicit = append(explicit, attribute.String("service.namespace", cfg.ServiceNamespace))
	}
	// Later detectors win: the default name, then the environment, then
	// the settings.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
		resource.WithAttributes(explicit...),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}

// randomID returns a random UUID (version 4), as the reference's default
// service instance id is.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tracing: instance id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// ServerOptions returns the gRPC server options that give each
// ShouldRateLimit call its server span, continuing the caller's trace.
func (t *Tracer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithPropagators(t.prop),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return strings.HasPrefix(info.FullMethodName, rateLimitService)
		}),
	))}
}

// Shutdown exports the spans still buffered, within ctx, and stops the
// exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
