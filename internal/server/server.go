// Package server exposes a Limiter over Envoy's RateLimitService v3 gRPC
// API, the standard gRPC health service, and the reference service's HTTP
// endpoints (/healthcheck, /json, /rlconfig).
package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// ServiceName is the gRPC service name health reports on, besides "".
const ServiceName = "envoy.service.ratelimit.v3.RateLimitService"

// Options configure a Service. Limiter is required.
type Options struct {
	Limiter *limiter.Limiter
	Logger  *zap.Logger // default: no logs
	Limits  Limits
	// FailureMode decides the answer when the store cannot: "error" (the
	// default: gRPC UNAVAILABLE, so Envoy's failure_mode_deny decides),
	// "allow" (OK for every descriptor) or "deny" (OVER_LIMIT for every
	// descriptor).
	FailureMode string
	// OnFailureMode, when set, is called with the mode each time allow or
	// deny answers for a failed store.
	OnFailureMode func(mode string)
	// Headers adds RateLimit-* and Retry-After response headers.
	Headers Headers
	// OverLimitBody, when not empty, is the raw_body of OVER_LIMIT
	// responses (the body Envoy sends with its 429).
	OverLimitBody []byte
	// RequestMetadata adds the request's domain and descriptors to the
	// response's dynamic_metadata, as the reference service's
	// RESPONSE_DYNAMIC_METADATA does.
	RequestMetadata bool
	// Metrics, when set, records every request.
	Metrics *telemetry.Metrics
}

// Failure modes, the values of Options.FailureMode (and of the service's
// --failure-mode flag, which settings validates against FailureModes).
const (
	FailError = "error"
	FailAllow = "allow"
	FailDeny  = "deny"
)

// FailureModes returns every failure mode, the default first.
func FailureModes() []string { return []string{FailError, FailAllow, FailDeny} }

// Service implements RateLimitService v3 on a Limiter. It is safe for
// concurrent use.
type Service struct {
	rlsv3.UnimplementedRateLimitServiceServer
	lim    *limiter.Limiter
	log    *zap.Logger
	limits Limits
	health *health.Server
	mode   string
	onMode func(string)

	headers         Headers
	overBody        []byte
	requestMetadata bool
	metrics         *telemetry.Metrics
}

var _ rlsv3.RateLimitServiceServer = (*Service)(nil)

// New returns a Service; its health starts NOT_SERVING until SetServing.
func New(opts Options) (*Service, error) {
	if opts.Limiter == nil {
		return nil, errors.New("server: no limiter")
	}
	s := &Service{lim: opts.Limiter, log: opts.Logger, limits: opts.Limits.withDefaults(), health: health.NewServer(), mode: opts.FailureMode, onMode: opts.OnFailureMode,
		headers: opts.Headers.withDefaults(), overBody: opts.OverLimitBody, requestMetadata: opts.RequestMetadata,
		metrics: opts.Metrics}
	if s.mode == "" {
		s.mode = FailError
	}
	if !slices.Contains(FailureModes(), s.mode) {
		return nil, fmt.Errorf("server: unknown failure mode %q (want one of %s)", s.mode, strings.Join(FailureModes(), ", "))
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.SetServing(false)
	return s, nil
}

// Register adds the rate-limit and health services to g.
func (s *Service) Register(g *grpc.Server) {
	rlsv3.RegisterRateLimitServiceServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
}

// SetServing sets the health of "" and ServiceName.
func (s *Service) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(ServiceName, st)
}

// Serving reports whether health is SERVING.
func (s *Service) Serving() bool {
	r, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
}

// Shutdown turns health NOT_SERVING for good (used on SIGTERM).
func (s *Service) Shutdown() { s.health.Shutdown() }

// ShouldRateLimit implements RateLimitService: INVALID_ARGUMENT for a
// malformed request, UNAVAILABLE when the store cannot decide.
func (s *Service) ShouldRateLimit(ctx context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	start := time.Now()
	c := getCall()
	defer putCall(c)
	if err := s.limits.convert(in, c); err != nil {
		s.metrics.ObserveRequest(telemetry.ResultInvalid, time.Since(start))
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	n := len(c.req.Descriptors)
	if cap(c.statuses) < n {
		c.statuses = make([]limiter.Status, n)
	}
	c.statuses = c.statuses[:n]
	over, err := s.lim.ShouldRateLimit(ctx, &c.req, c.statuses)
	if err != nil {
		s.metrics.ObserveRequest(telemetry.ResultError, time.Since(start))
		if ctx.Err() == nil && s.mode != FailError {
			s.log.Warn("store failed; answering per failure mode", zap.String("mode", s.mode), zap.String("domain", in.Domain), zap.Error(err))
			s.metrics.FailureModeDecision(s.mode)
			if s.onMode != nil {
				s.onMode(s.mode)
			}
			return failureResponse(n, s.mode == FailDeny), nil
		}
		return nil, s.failure(ctx, in, err)
	}
	if ce := s.log.Check(zap.DebugLevel, "should rate limit"); ce != nil {
		ce.Write(zap.String("domain", in.Domain), zap.Int("descriptors", n), zap.Bool("over_limit", over))
	}
	resp := response(over, c.statuses)
	s.decorate(resp, &c.req, c.statuses)
	if s.metrics != nil {
		s.metrics.ObserveStatuses(c.req.Domain, &c.req, c.statuses)
		result := telemetry.ResultOK
		if over {
			result = telemetry.ResultOverLimit
		}
		s.metrics.ObserveRequest(result, time.Since(start))
	}
	return resp, nil
}

// failureResponse answers every descriptor OK (allow) or OVER_LIMIT
// (deny), without a limit.
func failureResponse(n int, deny bool) *rlsv3.RateLimitResponse {
	code := rlsv3.RateLimitResponse_OK
	if deny {
		code = rlsv3.RateLimitResponse_OVER_LIMIT
	}
	resp := &rlsv3.RateLimitResponse{OverallCode: code, Statuses: make([]*rlsv3.RateLimitResponse_DescriptorStatus, n)}
	for i := range resp.Statuses {
		resp.Statuses[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: code}
	}
	return resp
}

// failure maps a limiter error to a gRPC status.
func (s *Service) failure(ctx context.Context, in *rlsv3.RateLimitRequest, err error) error {
	if ctx.Err() != nil {
		return status.Error(codes.Canceled, "server: request cancelled: "+ctx.Err().Error())
	}
	if errors.Is(err, limiter.ErrUnavailable) {
		s.log.Warn("store unavailable", zap.String("domain", in.GetDomain()), zap.Error(err))
		return status.Error(codes.Unavailable, fmt.Sprintf("rate-limit store unavailable: %v", err))
	}
	s.log.Error("rate limit failed", zap.String("domain", in.GetDomain()), zap.Error(err))
	return status.Error(codes.Unavailable, fmt.Sprintf("rate limit failed: %v", err))
}
