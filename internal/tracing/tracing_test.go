package tracing_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/internal/tracing"
	"github.com/envoy-rls/envoy-rls/internal/tracing/otlptest"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

const rules = `
domain: d
descriptors:
  - key: k
    rate_limit: {unit: minute, requests_per_unit: 100}
`

// failing is a store whose backend is down.
type failing struct{}

func (failing) Apply(context.Context, int64, []limiter.Op, []strategies.Decision) error {
	return fmt.Errorf("test: %w", limiter.ErrUnavailable)
}
func (failing) Close() error { return nil }

// serve serves rules on store through a gRPC server traced by tr, and
// returns a client.
func serve(t *testing.T, tr *tracing.Tracer, store limiter.Store) *grpc.ClientConn {
	t.Helper()
	cfg, err := descriptors.Parse(map[string][]byte{"r.yaml": []byte(rules)})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := limiter.New(cfg, limiter.Options{Store: tr.Store("memory", store)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := server.New(server.Options{Limiter: lim, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetServing(true)
	return testservers.DialGRPC(t, testservers.ServeGRPC(t, svc.Register, append(svc.GRPCOptions(), tr.ServerOptions()...)...))
}

func newTracer(t *testing.T, cfg settings.Tracing, env map[string]string) *tracing.Tracer {
	t.Helper()
	// Export every 50 ms: the server span ends after the client has its
	// answer, so the test waits for spans rather than flushing once.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	cfg.Enabled = true
	tr, err := tracing.New(context.Background(), cfg, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr
}

// both reports whether spans hold the server span and the store span.
func both(spans []otlptest.Span) bool {
	_, srv := find(spans, method)
	_, st := find(spans, tracing.StoreSpanName)
	return srv && st
}

func find(spans []otlptest.Span, name string) (otlptest.Span, bool) {
	i := slices.IndexFunc(spans, func(s otlptest.Span) bool { return s.Name == name })
	if i < 0 {
		return otlptest.Span{}, false
	}
	return spans[i], true
}

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
	method      = "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
)

func request() *rlsv3.RateLimitRequest {
	return &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{
		{Entries: []*rlcommon.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}},
	}}
}

// TestSpansContinueTheCallersTrace sends a W3C traceparent as Envoy does
// and checks, over both OTLP transports, that the server span continues
// that trace under the caller's span and that the store round trip is its
// child.
func TestSpansContinueTheCallersTrace(t *testing.T) {
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			rcv := otlptest.Start(t)
			endpoint := rcv.HTTPEndpoint
			if proto == "grpc" {
				endpoint = rcv.GRPCEndpoint
			}
			tr := newTracer(t, settings.Tracing{Protocol: proto, Endpoint: endpoint, ServiceName: "rls-test", ServiceNamespace: "ns", ServiceInstanceID: "pod-1", SamplingRate: 1}, nil)
			store := memory.New(memory.Options{})
			t.Cleanup(func() { store.Close() })
			conn := serve(t, tr, store)
			ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
			if _, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, request()); err != nil {
				t.Fatal(err)
			}
			// Health checks get no span.
			if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			spans, err := rcv.Wait(30*time.Second, both)
			if err != nil {
				t.Fatalf("%v: %+v", err, spans)
			}
			srv, ok := find(spans, method)
			if !ok {
				t.Fatalf("no server span %q in %+v", method, spans)
			}
			st, ok := find(spans, tracing.StoreSpanName)
			if !ok {
				t.Fatalf("no store span in %+v", spans)
			}
			if srv.TraceID != parentTrace || srv.ParentSpanID != parentSpan {
				t.Errorf("server span trace %s parent %s, want %s under %s", srv.TraceID, srv.ParentSpanID, parentTrace, parentSpan)
			}
			if st.TraceID != parentTrace || st.ParentSpanID != srv.SpanID {
				t.Errorf("store span trace %s parent %s, want the server span %s", st.TraceID, st.ParentSpanID, srv.SpanID)
			}
			if st.Attributes["envoy_rls.store"] != "memory" || st.Error {
				t.Errorf("store span attributes %v, error %v", st.Attributes, st.Error)
			}
			if len(spans) != 2 {
				t.Errorf("%d spans, want 2 (no span for the health check): %+v", len(spans), spans)
			}
			res := srv.Resource
			if res["service.name"] != "rls-test" || res["service.namespace"] != "ns" || res["service.instance.id"] != "pod-1" {
				t.Errorf("resource %v", res)
			}
		})
	}
}

// TestB3AndStoreErrors checks that Zipkin's B3 headers are continued too,
// and that a failing store's span records the error; the endpoint comes
// from OTEL_EXPORTER_OTLP_PROTOCOL and the exporter's own variables.
func TestB3AndStoreErrors(t *testing.T) {
	rcv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.GRPCEndpoint)
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	tr := newTracer(t, settings.Tracing{SamplingRate: 1}, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
	conn := serve(t, tr, failing{})
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-b3-traceid", parentTrace, "x-b3-spanid", parentSpan, "x-b3-sampled", "1")
	if _, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, request()); err == nil {
		t.Fatal("no error from a failing store")
	}
	spans, err := rcv.Wait(30*time.Second, both)
	if err != nil {
		t.Fatalf("%v: %+v", err, spans)
	}
	srv, _ := find(spans, method)
	st, _ := find(spans, tracing.StoreSpanName)
	if srv.TraceID != parentTrace || srv.ParentSpanID != parentSpan {
		t.Errorf("server span %+v does not continue the B3 trace", srv)
	}
	if !st.Error || st.ParentSpanID != srv.SpanID {
		t.Errorf("store span %+v: want an error, child of %s", st, srv.SpanID)
	}
	if srv.Resource["service.name"] != "from-env" || srv.Resource["service.instance.id"] == "" {
		t.Errorf("resource %v: want OTEL_SERVICE_NAME and a random instance id", srv.Resource)
	}
}

// TestSamplingFollowsTheCaller checks that a rate of 0 samples no new
// trace but still follows a caller that sampled.
func TestSamplingFollowsTheCaller(t *testing.T) {
	rcv := otlptest.Start(t)
	tr := newTracer(t, settings.Tracing{Protocol: "http", Endpoint: rcv.HTTPEndpoint, SamplingRate: 0}, nil)
	conn := serve(t, tr, failing{})
	c := rlsv3.NewRateLimitServiceClient(conn)
	_, _ = c.ShouldRateLimit(context.Background(), request()) // a new trace: not sampled
	sampled := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
	_, _ = c.ShouldRateLimit(sampled, request())
	spans, err := rcv.Wait(30*time.Second, both)
	if err != nil {
		t.Fatalf("%v: %+v", err, spans)
	}
	// Shutting down exports whatever else was buffered: nothing of the
	// unsampled trace may be among it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range rcv.Spans() {
		if s.TraceID != parentTrace {
			t.Errorf("span %s of trace %s sampled; only the caller's trace should be", s.Name, s.TraceID)
		}
	}
}

func TestBadProtocol(t *testing.T) {
	_, err := tracing.New(context.Background(), settings.Tracing{Enabled: true, SamplingRate: 1}, func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_PROTOCOL" {
			return "http/json"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Fatalf("err %v, want one naming http/json", err)
	}
}
