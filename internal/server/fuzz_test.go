package server

import (
	"context"
	"testing"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
)

// FuzzRequest feeds arbitrary bytes to the service as a ShouldRateLimit
// request, through the service's codec and handler as gRPC would: the
// answer is a response or INVALID_ARGUMENT, never a panic, never another
// code (the memory store does not fail). The seed corpus holds valid
// requests, invalid UTF-8, a truncated message, an override whose window
// overflows, a hits_addend past the bound, and the corpus files of
// testdata/fuzz/FuzzRequest; plain `go test` runs them all.
func FuzzRequest(f *testing.F) {
	add := func(r *rlsv3.RateLimitRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(&rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), desc("big", "x")}})
	over := desc("k", "v")
	over.Limit = &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 5, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(1000)}
	add(&rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{over}})
	ok := desc("k", "v")
	ok.Limit = &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 5, Unit: typev3.RateLimitUnit_MINUTE, UnitMultiplier: wrapperspb.UInt32(3)}
	ok.HitsAddend = wrapperspb.UInt64(2)
	add(&rlsv3.RateLimitRequest{Domain: "d", HitsAddend: 3, Descriptors: []*rlcommon.RateLimitDescriptor{ok}})
	huge := desc("k", "v")
	huge.HitsAddend = wrapperspb.UInt64(1 << 62)
	huge.IsNegativeHits = true
	add(&rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{huge}})
	utf := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{'d', 0xff})
	f.Add(utf)
	f.Add(utf[:2])
	f.Add([]byte{})

	cfg, err := descriptors.Parse(map[string][]byte{"r.yaml": []byte(rules)})
	if err != nil {
		f.Fatal(err)
	}
	store := memory.New(memory.Options{MaxKeys: 1 << 12})
	defer store.Close()
	lim, err := limiter.New(cfg, limiter.Options{Store: store})
	if err != nil {
		f.Fatal(err)
	}
	svc, err := New(Options{Limiter: lim, FailureMode: FailAllow,
		Limits: Limits{MaxDescriptors: 16, MaxEntries: 8, MaxValueBytes: 256, MaxRequestBytes: 4096}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := func(v any) error { return codec{}.Unmarshal(data, v) }
		resp, err := shouldRateLimitHandler(svc, context.Background(), dec, svc.recoverer)
		if err != nil {
			if c := status.Code(err); c != codes.InvalidArgument {
				t.Fatalf("got %v, want a response or INVALID_ARGUMENT", err)
			}
			return
		}
		r := resp.(*rlsv3.RateLimitResponse)
		if r.OverallCode == rlsv3.RateLimitResponse_UNKNOWN {
			t.Fatal("overall_code UNKNOWN")
		}
		var in rlsv3.RateLimitRequest
		if proto.Unmarshal(data, &in) != nil || len(r.Statuses) != len(in.Descriptors) {
			t.Fatalf("%d statuses for a request that %v", len(r.Statuses), proto.Unmarshal(data, &in))
		}
	})
}
