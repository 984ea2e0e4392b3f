package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/envoy-rls/envoy-rls/internal/breaker"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// fakeStore answers Apply with err and counts its calls.
type fakeStore struct {
	err    error
	calls  int
	closed bool
}

func (s *fakeStore) Apply(_ context.Context, _ int64, ops []limiter.Op, out []strategies.Decision) error {
	s.calls++
	for i := range ops {
		out[i] = strategies.Decision{Allowed: true}
	}
	return s.err
}

func (s *fakeStore) Close() error { s.closed = true; return nil }

type fakePingStore struct {
	fakeStore
	pingErr error
}

func (s *fakePingStore) Ping(context.Context) error { return s.pingErr }

func TestInstrumentStore(t *testing.T) {
	m := New(Options{})
	inner := &fakeStore{}
	s := m.InstrumentStore("memory", inner)
	if _, ok := s.(limiter.Pinger); ok {
		t.Error("the wrapper of a store without Ping is a Pinger")
	}
	out := make([]strategies.Decision, 1)
	if err := s.Apply(context.Background(), 0, []limiter.Op{{Key: "k", Hits: 1}}, out); err != nil {
		t.Fatal(err)
	}
	inner.err = limiter.ErrUnavailable
	if err := s.Apply(context.Background(), 0, []limiter.Op{{Key: "k", Hits: 1}}, out); !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Apply error = %v, want the store's", err)
	}
	if inner.calls != 2 || !out[0].Allowed {
		t.Fatalf("inner store calls = %d, decision %+v", inner.calls, out[0])
	}
	if err := s.Close(); err != nil || !inner.closed {
		t.Fatalf("Close = %v, inner closed %v", err, inner.closed)
	}
	if u, ok := s.(interface{ Unwrap() limiter.Store }); !ok || u.Unwrap() != inner {
		t.Error("Unwrap does not return the wrapped store")
	}
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("memory", OpApply)); got != 1 {
		t.Errorf("apply errors = %v, want 1", got)
	}

	ps := &fakePingStore{pingErr: errors.New("down")}
	p, ok := m.InstrumentStore("redis", ps).(limiter.Pinger)
	if !ok {
		t.Fatal("the wrapper of a Pinger is not a Pinger")
	}
	if err := p.Ping(context.Background()); err == nil {
		t.Fatal("Ping hid the store's error")
	}
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("redis", OpPing)); got != 1 {
		t.Errorf("ping errors = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "envoy_rls_store_duration_seconds"); err != nil || n != 2 {
		t.Errorf("store duration series = %d (%v), want 2", n, err)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.ObserveStatuses("edge", nil, []limiter.Status{{}})
	m.ObserveRequest(ResultOK, time.Millisecond)
	m.ObserveStore("memory", OpApply, time.Millisecond, nil)
	m.FailureModeDecision("allow")
	m.SetBreakerState("redis", breaker.Open.String())
	m.ConfigLoaded(1, testTime)
	m.ConfigLoadFailed()
	m.LocalCacheHit()
	if err := m.RegisterMemoryStore(func() (int64, int64) { return 0, 0 }); err != nil {
		t.Error(err)
	}
	if m.Registry() != nil {
		t.Error("Registry of nil Metrics is not nil")
	}
	inner := &fakeStore{}
	if s := m.InstrumentStore("memory", inner); s != limiter.Store(inner) {
		t.Error("InstrumentStore of nil Metrics wrapped the store")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("Handler of nil Metrics answered %d, want 404", rec.Code)
	}
}
