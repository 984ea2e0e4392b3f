package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/tracing"
	"github.com/envoy-rls/envoy-rls/internal/tracing/otlptest"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// BenchmarkStoreApply measures one Apply on the memory store: bare (what
// runs with tracing off, since nothing is wrapped), and wrapped by the
// tracer under a trace the sampler dropped and under a sampled one.
func BenchmarkStoreApply(b *testing.B) {
	rcv := otlptest.Start(b)
	tr, err := tracing.New(context.Background(), settings.Tracing{Enabled: true, Protocol: "http", Endpoint: rcv.HTTPEndpoint, SamplingRate: 0}, func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	fw, ok := strategies.Lookup("fixed_window")
	if !ok {
		b.Fatal("no fixed_window")
	}
	lim, err := fw.Prepare(strategies.Limit{Requests: 1 << 40, Period: 3600e6})
	if err != nil {
		b.Fatal(err)
	}
	ops := []limiter.Op{{Key: "bench", Strategy: fw, Limit: lim, Hits: 1}}
	run := func(b *testing.B, s limiter.Store, ctx context.Context) {
		out := make([]strategies.Decision, 1)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.Apply(ctx, int64(i), ops, out); err != nil {
				b.Fatal(err)
			}
		}
	}
	st := memory.New(memory.Options{})
	b.Cleanup(func() { st.Close() })
	b.Run("off", func(b *testing.B) { run(b, st, context.Background()) })
	b.Run("unsampled", func(b *testing.B) { run(b, tr.Store("memory", st), context.Background()) })
	sampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true}))
	b.Run("sampled", func(b *testing.B) { run(b, tr.Store("memory", st), sampled) })
}
