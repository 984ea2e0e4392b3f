package main

import (
	"context"
	"fmt"
	"net"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/envoy-rls/envoy-rls/internal/server"
)

// rlsServiceName is the gRPC service name health checks ask about.
const rlsServiceName = "envoy.service.ratelimit.v3.RateLimitService"

// noopService answers every valid ShouldRateLimit with OK and one OK
// status per descriptor, doing nothing else: the ceiling that envoy-rls's
// figures are compared with. It is safe for concurrent use.
type noopService struct {
	rlsv3.UnimplementedRateLimitServiceServer
}

// ShouldRateLimit answers OK at once. Like envoy-rls, it refuses a
// request without a domain or descriptors.
func (noopService) ShouldRateLimit(_ context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	if in.Domain == "" || len(in.Descriptors) == 0 {
		return nil, status.Error(codes.InvalidArgument, "rls-bench noop: domain and descriptors are required")
	}
	st := make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(in.Descriptors))
	for i := range st {
		st[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: st}, nil
}

// noopServerOptions are envoy-rls's default gRPC server options (see
// internal/app: --grpc-max-recv-bytes 1 MiB, --grpc-keepalive-time 30s,
// --grpc-max-connection-age 5m, plain text) and its codec, so that the
// ceiling runs on the same stack.
func noopServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodec(server.Codec()),
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  30 * time.Second,
			Timeout:               10 * time.Second,
			MaxConnectionAge:      5 * time.Minute,
			MaxConnectionAgeGrace: 30 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// serveNoop serves the no-op service and gRPC health on l until ctx is
// done, then stops gracefully.
func serveNoop(ctx context.Context, l net.Listener) error {
	g := grpc.NewServer(noopServerOptions()...)
	rlsv3.RegisterRateLimitServiceServer(g, noopService{})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(rlsServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("rls-bench: noop server: %w", err)
	case <-ctx.Done():
		g.GracefulStop()
		<-errc
		return nil
	}
}
