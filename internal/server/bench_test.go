package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
)

// noop answers OK at once: the ceiling of the gRPC stack.
type noop struct {
	rlsv3.UnimplementedRateLimitServiceServer
}

func (noop) ShouldRateLimit(_ context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(in.Descriptors))}
	for i := range resp.Statuses {
		resp.Statuses[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	return resp, nil
}

func benchServer(b *testing.B, opts []grpc.ServerOption, register func(*grpc.Server), descs int) {
	conn := testservers.DialGRPC(b, testservers.ServeGRPC(b, register, opts...))
	client := rlsv3.NewRateLimitServiceClient(conn)
	reqs := make([]*rlsv3.RateLimitRequest, 1024)
	for i := range reqs {
		r := &rlsv3.RateLimitRequest{Domain: "edge"}
		keys := []string{"remote_address", "user_id", "path"}
		for d := 0; d < descs; d++ {
			r.Descriptors = append(r.Descriptors, &rlcommon.RateLimitDescriptor{Entries: []*rlcommon.RateLimitDescriptor_Entry{{Key: keys[d%3], Value: fmt.Sprintf("/api/v%d", i)}}})
		}
		reqs[i] = r
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.ShouldRateLimit(context.Background(), reqs[n.Add(1)%1024]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGRPC compares the service on the memory store with a do-nothing
// server on the same gRPC stack, in one run: the ratio of their ns/op is
// the service's cost over the ceiling.
func BenchmarkGRPC(b *testing.B) {
	cfg, err := descriptors.Load("../../examples/ratelimit.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, descs := range []int{1, 3} {
		b.Run(fmt.Sprintf("noop/descriptors=%d", descs), func(b *testing.B) {
			benchServer(b, []grpc.ServerOption{grpc.ForceServerCodec(codec{})}, func(g *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(g, noop{}) }, descs)
		})
		b.Run(fmt.Sprintf("memory/descriptors=%d", descs), func(b *testing.B) {
			store := memory.New(memory.Options{})
			defer store.Close()
			lim, _ := limiter.New(cfg, limiter.Options{Store: store})
			svc, _ := New(Options{Limiter: lim})
			benchServer(b, svc.GRPCOptions(), svc.Register, descs)
		})
	}
}
