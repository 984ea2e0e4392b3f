package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// rawCodec sends and receives bytes as they are, so that a test can send
// what no generated client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// countingStore counts its calls and answers them with the memory store's
// behaviour of an empty key, or blocks for delay first.
type countingStore struct {
	calls atomic.Int64
	delay time.Duration
	fail  bool
}

func (s *countingStore) Apply(ctx context.Context, _ int64, ops []limiter.Op, out []strategies.Decision) error {
	s.calls.Add(1)
	if s.fail {
		return limiter.ErrUnavailable
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	for i := range ops {
		out[i] = strategies.Decision{Allowed: true, Remaining: 1}
	}
	return nil
}

func (s *countingStore) Close() error { return nil }

// serveFull serves rules on store with the service's own gRPC options
// (its codec and handlers) plus extra, and returns the address.
func serveFull(t *testing.T, store limiter.Store, opts Options, extra ...grpc.ServerOption) (string, *Service) {
	t.Helper()
	svc := newService(t, rules, store, opts)
	return testservers.ServeGRPC(t, svc.Register, append(svc.GRPCOptions(), extra...)...), svc
}

// TestUndecodableRequestIsInvalidArgument sends bytes that are no
// RateLimitRequest, a string of invalid UTF-8, and a message above the
// transport's size limit: each is INVALID_ARGUMENT naming the problem,
// and none reaches the store.
func TestUndecodableRequestIsInvalidArgument(t *testing.T) {
	store := &countingStore{}
	// The transport's bound sits above the service's, as in app.
	addr, _ := serveFull(t, store, Options{FailureMode: FailAllow, Limits: Limits{MaxRequestBytes: 16 << 10, MaxValueBytes: 64 << 10}},
		grpc.MaxRecvMsgSize(2*16<<10+64<<10))
	conn := testservers.DialGRPC(t, addr, grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(1<<30)))

	domain := func(v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), v)
	}
	// big is a valid request of one descriptor whose key and value carry n bytes.
	big := func(n int) []byte {
		b, err := proto.Marshal(&rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", strings.Repeat("v", n))}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tt := range []struct {
		name string
		req  []byte
		want string
	}{
		{"bad wire format", []byte{0xff, 0xff, 0xff, 0xff}, "cannot decode a RateLimitRequest"},
		{"truncated field", domain([]byte("edge"))[:4], "cannot decode a RateLimitRequest"},
		{"invalid UTF-8", domain([]byte{'d', 0xff, 0xfe}), "invalid UTF-8"},
		{"over the request limit", big(50 << 10), "carries 51202 bytes of domain, keys and values, more than the limit of 16384"},
	} {
		var resp []byte
		err := conn.Invoke(context.Background(), rlsv3.RateLimitService_ShouldRateLimit_FullMethodName, &tt.req, &resp)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT saying %q", tt.name, err, tt.want)
		}
	}
	// Above the transport's bound gRPC refuses the message before reading
	// it, with its own status (see docs/troubleshooting.md).
	var resp []byte
	req := big(200 << 10)
	if err := conn.Invoke(context.Background(), rlsv3.RateLimitService_ShouldRateLimit_FullMethodName, &req, &resp); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("above the transport's bound: got %v, want RESOURCE_EXHAUSTED", err)
	}
	// The service still answers a good request on the same connection.
	c := rlsv3.NewRateLimitServiceClient(testservers.DialGRPC(t, addr))
	if _, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}}); err != nil {
		t.Fatal(err)
	}
	if n := store.calls.Load(); n != 1 {
		t.Errorf("the store was called %d times, want once (for the good request)", n)
	}
}

// TestOverflowingOverrideIsInvalidArgument asks for a limit whose window
// overflows (1000 years): INVALID_ARGUMENT over gRPC and 400 on /json,
// in every failure mode, and the store is never asked.
func TestOverflowingOverrideIsInvalidArgument(t *testing.T) {
	over := desc("k", "v")
	over.Limit = &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 5, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(1000)}
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), over}}
	const want = "unit_multiplier 1000 is too large: a window of 1000 × YEAR is longer than a limit can count (at most 285 × YEAR)"
	for _, mode := range []string{FailError, FailAllow, FailDeny} {
		store := &countingStore{fail: true}
		addr, svc := serveFull(t, store, Options{FailureMode: mode, OnFailureMode: func(string) { t.Errorf("%s: failure mode used", mode) }})
		c := rlsv3.NewRateLimitServiceClient(testservers.DialGRPC(t, addr))
		_, err := c.ShouldRateLimit(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), want) {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT saying %q", mode, err, want)
		}
		if store.calls.Load() != 0 {
			t.Errorf("%s: the store was called %d times", mode, store.calls.Load())
		}
		rec := httptest.NewRecorder()
		body := `{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"limit":{"requests_per_unit":5,"unit":"YEAR","unit_multiplier":1000}}]}`
		svc.HTTPHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/json", strings.NewReader(body)))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: /json answered %d %q, want 400 saying %q", mode, rec.Code, rec.Body.String(), want)
		}
	}
}

// serveGuarded serves rules on store behind the receive guard g.
func serveGuarded(t testing.TB, store limiter.Store, g *RecvGuard) string {
	svc := newService(t, rules, store, Options{})
	return testservers.ServeGRPCOn(t, g.Listener, svc.Register, append(svc.GRPCOptions(), g.Options()...)...)
}

// TestRecvDeadlineClosesSilentStreams opens streams that never send their
// request: the server closes their connection after the deadline, while
// a call on another connection whose handler takes longer than the
// deadline still succeeds (the deadline covers receiving only).
func TestRecvDeadlineClosesSilentStreams(t *testing.T) {
	const d = time.Second
	g := NewRecvGuard(d)
	addr := serveGuarded(t, &countingStore{delay: 3 * d}, g)
	silent := testservers.DialGRPC(t, addr)

	var streams []grpc.ClientStream
	for range 20 {
		st, err := silent.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, rlsv3.RateLimitService_ShouldRateLimit_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	slow := make(chan error, 1)
	go func() {
		c := rlsv3.NewRateLimitServiceClient(testservers.DialGRPC(t, addr))
		_, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}})
		slow <- err
	}()
	for i, st := range streams {
		// RecvMsg returns once the server closes the connection.
		var resp rlsv3.RateLimitResponse
		err := st.RecvMsg(&resp)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("stream %d: got %v, want UNAVAILABLE (connection closed)", i, err)
		}
	}
	if n := g.Closed(); n != 1 {
		t.Errorf("the guard closed %d connections, want 1", n)
	}
	if err := <-slow; err != nil {
		t.Errorf("a call whose handler outlasts the receive deadline: %v", err)
	}
}

// TestRecvDeadlineOff keeps the server as gRPC makes it.
func TestRecvDeadlineOff(t *testing.T) {
	g := NewRecvGuard(0)
	if opts := g.Options(); opts != nil {
		t.Errorf("NewRecvGuard(0).Options() = %d options, want none", len(opts))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if g.Listener(lis) != lis {
		t.Error("NewRecvGuard(0).Listener wraps the listener")
	}
}

// BenchmarkRecvDeadline is the cost of RecvDeadline per call: the same
// service with and without it, in one run.
func BenchmarkRecvDeadline(b *testing.B) {
	cfg, err := descriptors.Load("../../examples/ratelimit.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []time.Duration{0, 10 * time.Second} {
		b.Run(fmt.Sprintf("recv-timeout=%s", d), func(b *testing.B) {
			store := memory.New(memory.Options{})
			defer store.Close()
			lim, _ := limiter.New(cfg, limiter.Options{Store: store})
			svc, _ := New(Options{Limiter: lim})
			g := NewRecvGuard(d)
			benchServer(b, append(svc.GRPCOptions(), g.Options()...), svc.Register, 1)
		})
	}
}
