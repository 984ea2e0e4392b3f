package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

const rules = `
domain: d
descriptors:
  - key: k
    rate_limit: {rate: "10/5m", name: five}
  - key: big
    rate_limit: {unit: second, requests_per_unit: 3}
`

// deadStore fails every call as an unreachable backend would.
type deadStore struct{}

func (deadStore) Apply(context.Context, int64, []limiter.Op, []strategies.Decision) error {
	return errors.Join(errors.New("dial tcp: connection refused"), limiter.ErrUnavailable)
}
func (deadStore) Close() error { return nil }

// serve starts a Service over real gRPC on loopback and returns a client.
func serve(t *testing.T, store limiter.Store, opts Options) (rlsv3.RateLimitServiceClient, *Service, *grpc.ClientConn) {
	t.Helper()
	return serveWith(t, rules, store, opts)
}

// serveRules serves the given rules on a memory store.
func serveRules(t *testing.T, yaml string, opts Options) (rlsv3.RateLimitServiceClient, *Service, *grpc.ClientConn) {
	t.Helper()
	return serveWith(t, yaml, memStore(t), opts)
}

func serveWith(t *testing.T, yaml string, store limiter.Store, opts Options) (rlsv3.RateLimitServiceClient, *Service, *grpc.ClientConn) {
	t.Helper()
	svc := newService(t, yaml, store, opts)
	conn := testservers.DialGRPC(t, testservers.ServeGRPC(t, svc.Register))
	return rlsv3.NewRateLimitServiceClient(conn), svc, conn
}

// newService builds a Service with opts for yaml's rules on store.
func newService(t testing.TB, yaml string, store limiter.Store, opts Options) *Service {
	t.Helper()
	cfg, err := descriptors.Parse(map[string][]byte{"r.yaml": []byte(yaml)})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Limiter, err = limiter.New(cfg, limiter.Options{Store: store}); err != nil {
		t.Fatal(err)
	}
	svc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func desc(kv ...string) *rlcommon.RateLimitDescriptor {
	d := &rlcommon.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlcommon.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func memStore(t *testing.T) limiter.Store {
	s := memory.New(memory.Options{})
	t.Cleanup(func() { s.Close() })
	return s
}

func TestResponseFields(t *testing.T) {
	c, svc, _ := serve(t, memStore(t), Options{})
	svc.SetServing(true)
	resp, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), desc("none", "x")}})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Statuses[0]
	cl := st.CurrentLimit
	if cl.Name != "five" || cl.RequestsPerUnit != 10 || cl.Unit != rlsv3.RateLimitResponse_RateLimit_MINUTE || cl.UnitMultiplier.GetValue() != 5 {
		t.Errorf("current_limit %v", cl)
	}
	if st.LimitRemaining != 9 || st.DurationUntilReset.AsDuration() <= 0 || st.DurationUntilReset.AsDuration() > 5*time.Minute {
		t.Errorf("status %v", st)
	}
	if s := resp.Statuses[1]; s.CurrentLimit != nil || s.DurationUntilReset != nil || s.Code != rlsv3.RateLimitResponse_OK {
		t.Errorf("unmatched status %v", s)
	}
	if resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Errorf("overall %v", resp.OverallCode)
	}
}

func TestInvalidArgument(t *testing.T) {
	c, _, _ := serve(t, memStore(t), Options{Limits: Limits{MaxDescriptors: 2, MaxEntries: 2, MaxValueBytes: 8, MaxRequestBytes: 20}})
	big := desc("k", "v")
	big.HitsAddend = wrapperspb.UInt64(1 << 60)
	badUnit := desc("k", "v")
	badUnit.Limit = &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_UNKNOWN}
	zeroMult := desc("k", "v")
	zeroMult.Limit = &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_SECOND, UnitMultiplier: wrapperspb.UInt32(0)}
	for want, req := range map[string]*rlsv3.RateLimitRequest{
		"domain is empty":           {Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}},
		"no descriptors":            {Domain: "d"},
		"descriptors[1] has no":     {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), {}}},
		"3 descriptors":             {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), desc("k", "v"), desc("k", "v")}},
		"3 entries":                 {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("a", "1", "b", "2", "c", "3")}},
		"longer than 8 bytes":       {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "123456789")}},
		"empty key":                 {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("", "v")}},
		"hits_addend":               {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{big}},
		"not a rate-limit unit":     {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{badUnit}},
		"unit_multiplier is 0":      {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{zeroMult}},
		"more than the limit of 20": {Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k1", "12345678", "k2", "12345678")}},
	} {
		_, err := c.ShouldRateLimit(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestFailureModes(t *testing.T) {
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), desc("big", "x")}}
	for mode, want := range map[string]rlsv3.RateLimitResponse_Code{
		FailAllow: rlsv3.RateLimitResponse_OK,
		FailDeny:  rlsv3.RateLimitResponse_OVER_LIMIT,
	} {
		var counted []string
		c, _, _ := serve(t, deadStore{}, Options{FailureMode: mode, OnFailureMode: func(m string) { counted = append(counted, m) }})
		resp, err := c.ShouldRateLimit(context.Background(), req)
		if err != nil || resp.OverallCode != want || len(resp.Statuses) != 2 || resp.Statuses[1].Code != want {
			t.Errorf("%s: %v %v", mode, resp, err)
		}
		if len(counted) != 1 || counted[0] != mode {
			t.Errorf("%s: counted %v", mode, counted)
		}
	}
	c, _, _ := serve(t, deadStore{}, Options{})
	_, err := c.ShouldRateLimit(context.Background(), req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error mode: %v", err)
	}
	if _, err := New(Options{Limiter: &limiter.Limiter{}, FailureMode: "maybe"}); err == nil {
		t.Error("unknown failure mode accepted")
	}
}

func TestHealth(t *testing.T) {
	_, svc, conn := serve(t, memStore(t), Options{})
	hc := healthpb.NewHealthClient(conn)
	// The empty name, the full service name and the reference service's
	// name ("ratelimit") all answer, and always the same.
	check := func(want healthpb.HealthCheckResponse_ServingStatus, when string) {
		t.Helper()
		for _, name := range []string{"", ServiceName, "ratelimit"} {
			r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
			if err != nil {
				t.Fatalf("%s: check %q: %v", when, name, err)
			}
			if r.Status != want {
				t.Errorf("%s: check %q = %v, want %v", when, name, r.Status, want)
			}
		}
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING, "before SetServing")
	svc.SetServing(true)
	check(healthpb.HealthCheckResponse_SERVING, "after SetServing")
	if !svc.Serving() {
		t.Error("Serving() false after SetServing")
	}
	svc.SetServing(false)
	check(healthpb.HealthCheckResponse_NOT_SERVING, "after SetServing(false)")
	svc.SetServing(true)
	svc.Shutdown()
	check(healthpb.HealthCheckResponse_NOT_SERVING, "after Shutdown")
}

// panicStore is a store with a bug.
type panicStore struct{ deadStore }

func (panicStore) Apply(context.Context, int64, []limiter.Op, []strategies.Decision) error {
	panic("bug")
}

func TestPanicInHandlerFailsOnlyThatCall(t *testing.T) {
	svc := newService(t, rules, panicStore{}, Options{})
	conn := testservers.DialGRPC(t, testservers.ServeGRPC(t, svc.Register, svc.GRPCOptions()...))
	c := rlsv3.NewRateLimitServiceClient(conn)
	for i := 0; i < 2; i++ {
		_, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}
