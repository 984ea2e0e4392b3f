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

// ServiceName is the gRPC service name health reports on, besides ""
// and ReferenceHealthName.
const ServiceName = "envoy.service.ratelimit.v3.RateLimitService"

// ReferenceHealthName is the health service name envoyproxy/ratelimit
// reports on, which existing health checks are configured with.
const ReferenceHealthName = "ratelimit"

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
	// RequestMetadata sets the response's dynamic_metadata as the
	// reference service's RESPONSE_DYNAMIC_METADATA does: the request's
	// domain, descriptors and hitsAddend, and the merged metadata of the
	// rules whose descriptors passed.
	RequestMetadata bool
	// QuotaMetadata adds envoy-rls's quota-mode summary under the
	// dynamic_metadata key QuotaMetadataKey (an extension, off by default).
	QuotaMetadata bool
	// Metrics, when set, records every request.
	Metrics *telemetry.Metrics
	// DeadlineMargin is kept from the deadline the caller sent, to answer
	// in: the store call must end that long before it (at most half the
	// time left). Zero keeps none.
	DeadlineMargin time.Duration
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
	quotaMetadata   bool
	metrics         *telemetry.Metrics
	margin          time.Duration
}

var _ rlsv3.RateLimitServiceServer = (*Service)(nil)

// New returns a Service; its health starts NOT_SERVING until SetServing.
func New(opts Options) (*Service, error) {
	if opts.Limiter == nil {
		return nil, errors.New("server: no limiter")
	}
	s := &Service{lim: opts.Limiter, log: opts.Logger, limits: opts.Limits.withDefaults(), health: health.NewServer(), mode: opts.FailureMode, onMode: opts.OnFailureMode,
		headers: opts.Headers.withDefaults(), overBody: opts.OverLimitBody, requestMetadata: opts.RequestMetadata,
		quotaMetadata: opts.QuotaMetadata, metrics: opts.Metrics, margin: opts.DeadlineMargin}
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
	g.RegisterService(serviceDesc(), s)
	healthpb.RegisterHealthServer(g, s.health)
}

// SetServing sets the health of "", ServiceName and ReferenceHealthName.
func (s *Service) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(ServiceName, st)
	s.health.SetServingStatus(ReferenceHealthName, st)
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
	sctx, cancel := s.storeContext(ctx)
	over, err := s.lim.ShouldRateLimit(sctx, &c.req, c.statuses)
	cancel()
	if err != nil {
		return s.failed(ctx, sctx, in, n, start, err)
	}
	if ce := s.log.Check(zap.DebugLevel, "should rate limit"); ce != nil {
		ce.Write(zap.String("domain", in.Domain), zap.Int("descriptors", n), zap.Bool("over_limit", over))
	}
	resp := response(over, c.statuses)
	s.decorate(resp, in, &c.req, c.statuses)
	if s.metrics != nil {
		if s.lim.Config().Domain(c.req.Domain) == nil {
			s.metrics.DomainNotFound(c.req.Domain)
		}
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

// storeContext returns the context of the store call: ctx, with its
// deadline (when it has one) brought forward by the margin, so that the
// answer (per the failure mode, when the store is late) reaches the
// caller before it gives up.
func (s *Service) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || s.margin <= 0 {
		return ctx, func() {}
	}
	m := min(s.margin, time.Until(dl)/2)
	return context.WithDeadline(ctx, dl.Add(-m))
}

// failed answers a request whose decision failed with err: ctx is the
// caller's context, sctx the store call's. The failure mode answers only
// when the store was unavailable, envoy-rls shed the call (overloaded) or
// the store call ran out of the caller's time; a client error is
// INVALID_ARGUMENT; anything else is INTERNAL. Every one counts as an
// error in the request metrics, failure-mode answers included, so that a
// failing store shows whatever the mode.
func (s *Service) failed(ctx, sctx context.Context, in *rlsv3.RateLimitRequest, n int, start time.Time, err error) (*rlsv3.RateLimitResponse, error) {
	if errors.Is(err, limiter.ErrInvalidRequest) {
		s.metrics.ObserveRequest(telemetry.ResultInvalid, time.Since(start))
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.metrics.ObserveRequest(telemetry.ResultError, time.Since(start))
	if ctx.Err() != nil {
		return nil, status.Error(codes.Canceled, "server: request cancelled: "+ctx.Err().Error())
	}
	late := sctx.Err() != nil && errors.Is(err, sctx.Err())
	overloaded := errors.Is(err, limiter.ErrOverloaded)
	if !late && !overloaded && !errors.Is(err, limiter.ErrUnavailable) {
		s.log.Error("rate limit failed", zap.String("domain", in.GetDomain()), zap.Error(err))
		return nil, status.Error(codes.Internal, fmt.Sprintf("rate limit failed: %v", err))
	}
	if s.mode != FailError {
		s.log.Warn("store failed; answering per failure mode", zap.String("mode", s.mode), zap.String("domain", in.Domain), zap.Error(err))
		s.metrics.FailureModeDecision(s.mode)
		if s.onMode != nil {
			s.onMode(s.mode)
		}
		return failureResponse(n, s.mode == FailDeny), nil
	}
	switch {
	case overloaded:
		s.log.Warn("overloaded; request shed", zap.String("domain", in.GetDomain()), zap.Error(err))
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("rate-limit service overloaded: %v", err))
	case late:
		s.log.Warn("store did not answer within the caller's deadline", zap.String("domain", in.GetDomain()), zap.Error(err))
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("rate-limit store did not answer within the caller's deadline: %v", err))
	default:
		s.log.Warn("store unavailable", zap.String("domain", in.GetDomain()), zap.Error(err))
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("rate-limit store unavailable: %v", err))
	}
}
