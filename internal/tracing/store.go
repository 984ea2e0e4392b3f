package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// StoreSpanName names the span of one store round trip.
const StoreSpanName = "envoy_rls.store.apply"

// Store returns next wrapped so that each Apply is a child span of the
// request's span, named StoreSpanName, with the store's name and the
// number of ops; a failed Apply records its error. The wrapper keeps
// next's Ping, so health still follows the store.
func (t *Tracer) Store(name string, next limiter.Store) limiter.Store {
	s := &store{next: next, tracer: t.tracer, opts: []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("envoy_rls.store", name)),
	}}
	if p, ok := next.(limiter.Pinger); ok {
		return &pingStore{store: s, p: p}
	}
	return s
}

type store struct {
	next   limiter.Store
	tracer trace.Tracer
	opts   []trace.SpanStartOption // built once
}

var _ limiter.Store = (*store)(nil)

func (s *store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	ctx, span := s.tracer.Start(ctx, StoreSpanName, s.opts...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("envoy_rls.ops", len(ops)))
	}
	err := s.next.Apply(ctx, now, ops, out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (s *store) Close() error { return s.next.Close() }

// pingStore is a store whose backend can be pinged.
type pingStore struct {
	*store
	p limiter.Pinger
}

var _ limiter.Pinger = (*pingStore)(nil)

func (s *pingStore) Ping(ctx context.Context) error { return s.p.Ping(ctx) }
