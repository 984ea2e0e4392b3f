package telemetry

import (
	"context"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Store operations recorded by InstrumentStore.
const (
	OpApply = "apply"
	OpPing  = "ping"
)

// InstrumentStore returns s wrapped so that every Apply (and Ping, when s
// is a limiter.Pinger) is recorded by ObserveStore under the store name
// (such as "memory" or "redis") and the op OpApply or OpPing. The wrapper
// is a limiter.Pinger exactly when s is one, and Unwrap returns s. The
// wrapper reads the wall clock only to measure the call's latency; the
// time the limiter passes down is unchanged. A nil Metrics returns s
// itself.
func (m *Metrics) InstrumentStore(name string, s limiter.Store) limiter.Store {
	if m == nil || s == nil {
		return s
	}
	is := &instrumentedStore{inner: s, m: m, name: name}
	if p, ok := s.(limiter.Pinger); ok {
		return &instrumentedPinger{instrumentedStore: is, pinger: p}
	}
	return is
}

// instrumentedStore records the latency and errors of a store's Apply.
type instrumentedStore struct {
	inner limiter.Store
	m     *Metrics
	name  string
}

var (
	_ limiter.Store  = (*instrumentedStore)(nil)
	_ limiter.Pinger = (*instrumentedPinger)(nil)
)

// Apply calls the wrapped store's Apply and records it.
func (s *instrumentedStore) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	start := time.Now()
	err := s.inner.Apply(ctx, now, ops, out)
	s.m.ObserveStore(s.name, OpApply, time.Since(start), err)
	return err
}

// Close closes the wrapped store.
func (s *instrumentedStore) Close() error { return s.inner.Close() }

// Unwrap returns the wrapped store.
func (s *instrumentedStore) Unwrap() limiter.Store { return s.inner }

// instrumentedPinger is an instrumentedStore whose store is a Pinger.
type instrumentedPinger struct {
	*instrumentedStore
	pinger limiter.Pinger
}

// Ping calls the wrapped store's Ping and records it.
func (s *instrumentedPinger) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.pinger.Ping(ctx)
	s.m.ObserveStore(s.name, OpPing, time.Since(start), err)
	return err
}
