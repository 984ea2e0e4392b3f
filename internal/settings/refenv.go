package settings

import (
	"flag"
	"fmt"
	"time"
)

// Tracing configures OpenTelemetry tracing: one span per ShouldRateLimit
// call, continuing the trace context the caller sends, with a child span
// for the store round trip, exported over OTLP. The zero value is off.
//
// Empty fields fall back to the standard OpenTelemetry variables, which
// the OTLP exporter and the SDK read themselves once at start:
// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _CERTIFICATE, _TIMEOUT,
// _PROTOCOL, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and
// OTEL_TRACES_SAMPLER(_ARG).
type Tracing struct {
	Enabled bool
	// Protocol is "grpc" or "http" (OTLP over HTTP with protobuf bodies);
	// empty takes OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, else "http" as
	// the reference does.
	Protocol string
	// Endpoint is the collector's URL (http://host:4318 for HTTP,
	// http://host:4317 for gRPC; https turns TLS on); empty takes
	// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else the OTLP default.
	Endpoint          string
	ServiceName       string // empty: OTEL_SERVICE_NAME, else "envoy-rls"
	ServiceNamespace  string
	ServiceInstanceID string // empty: a random id per process, as the reference does
	// SamplingRate is the share of new traces sampled (a caller's sampled
	// flag is always followed). 1, the default, leaves the choice to
	// OTEL_TRACES_SAMPLER when that is set.
	SamplingRate float64
	// FlushTimeout bounds the export of the last spans at shutdown.
	FlushTimeout time.Duration
}

// refenvFlags defines the flags of the refenv block: tracing, the gRPC
// connection-age grace, Redis TLS without a CA, and whether health
// follows the store.
func refenvFlags(fs *flag.FlagSet, s *Serve) {
	fs.BoolVar(&s.Tracing.Enabled, "tracing", false, "tracing: export OpenTelemetry spans over OTLP (one per ShouldRateLimit, a child per store round trip)")
	fs.StringVar(&s.Tracing.Protocol, "tracing-protocol", "", "tracing: OTLP transport, grpc or http (empty: OTEL_EXPORTER_OTLP_PROTOCOL, else http)")
	fs.StringVar(&s.Tracing.Endpoint, "tracing-endpoint", "", "tracing: collector URL, e.g. http://otel-collector:4318 (empty: OTEL_EXPORTER_OTLP_ENDPOINT)")
	fs.StringVar(&s.Tracing.ServiceName, "tracing-service-name", "", "tracing: service.name of the spans (empty: OTEL_SERVICE_NAME, else envoy-rls)")
	fs.StringVar(&s.Tracing.ServiceNamespace, "tracing-service-namespace", "", "tracing: service.namespace of the spans")
	fs.StringVar(&s.Tracing.ServiceInstanceID, "tracing-service-instance-id", "", "tracing: service.instance.id of the spans (empty: random per process)")
	fs.Float64Var(&s.Tracing.SamplingRate, "tracing-sampling-rate", 1, "tracing: share of new traces sampled, 0 to 1; a caller's sampling decision is followed (1: OTEL_TRACES_SAMPLER decides when set)")
	fs.DurationVar(&s.Tracing.FlushTimeout, "tracing-flush-timeout", 5*time.Second, "tracing: the longest the export of the last spans may take at shutdown")
	fs.DurationVar(&s.GRPCMaxConnAgeGrace, "grpc-max-connection-age-grace", 30*time.Second, "gRPC: how long calls may finish on a connection closed for its age")
	fs.BoolVar(&s.HealthFollowsStore, "health-follows-store", true, "health (/healthcheck and gRPC health) is NOT_SERVING while the store does not answer its pings; false keeps it SERVING (the reference's REDIS_HEALTH_CHECK_ACTIVE_CONNECTION=false)")
	fs.BoolVar(&s.RedisTLS, "redis-tls", false, "redis: connect with TLS (the system roots unless --redis-tls-ca), also for --redis-addrs")
}

// validateRefenv checks the refenv block's settings.
func (s Serve) validateRefenv() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("settings: "+format, a...)) }
	switch s.Tracing.Protocol {
	case "", "grpc", "http", "http/protobuf":
	default:
		bad("--tracing-protocol %q: want grpc or http", s.Tracing.Protocol)
	}
	if !(s.Tracing.SamplingRate >= 0 && s.Tracing.SamplingRate <= 1) {
		bad("--tracing-sampling-rate must be in [0, 1], got %g", s.Tracing.SamplingRate)
	}
	if s.Tracing.FlushTimeout <= 0 {
		bad("--tracing-flush-timeout must be positive, got %s", s.Tracing.FlushTimeout)
	}
	if s.GRPCMaxConnAgeGrace < 0 {
		bad("--grpc-max-connection-age-grace must not be negative, got %s", s.GRPCMaxConnAgeGrace)
	}
	if s.MetricsAddr != "" && (s.MetricsPath == "" || s.MetricsPath[0] != '/') {
		bad("--metrics-path %q must start with /", s.MetricsPath)
	}
	return errs
}
