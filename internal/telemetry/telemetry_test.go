package telemetry

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/envoy-rls/envoy-rls/internal/breaker"
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.UTC)

func TestObserveRequest(t *testing.T) {
	m := New(Options{})
	m.ObserveRequest(ResultOK, 300*time.Microsecond)
	m.ObserveRequest(ResultOK, 2*time.Millisecond)
	m.ObserveRequest(ResultOverLimit, time.Millisecond)
	m.ObserveRequest(ResultError, 30*time.Millisecond)
	m.ObserveRequest(ResultInvalid, 10*time.Microsecond)

	counts := map[string]uint64{}
	sums := map[string]float64{}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "envoy_rls_request_duration_seconds" {
			continue
		}
		for _, metric := range mf.Metric {
			result := metric.Label[0].GetValue()
			if metric.Label[0].GetName() != "result" || len(metric.Label) != 1 {
				t.Fatalf("labels = %v, want one label result", metric.Label)
			}
			counts[result] = metric.Histogram.GetSampleCount()
			sums[result] = metric.Histogram.GetSampleSum()
		}
	}
	want := map[string]uint64{"ok": 2, "over_limit": 1, "error": 1, "invalid": 1}
	for r, n := range want {
		if counts[r] != n {
			t.Errorf("count{result=%q} = %d, want %d", r, counts[r], n)
		}
	}
	if got := sums["ok"]; got < 0.0022999 || got > 0.0023001 {
		t.Errorf("sum{result=ok} = %v s, want 0.0023", got)
	}
}

func TestObserveStore(t *testing.T) {
	m := New(Options{})
	m.ObserveStore("redis", "apply", time.Millisecond, nil)
	m.ObserveStore("redis", "apply", 3*time.Millisecond, errors.New("boom"))
	m.ObserveStore("memory", "apply", time.Microsecond, nil)

	if n := testutil.CollectAndCount(m.storeDuration); n != 2 {
		t.Errorf("store duration series = %d, want 2", n)
	}
	want := `
# HELP envoy_rls_store_errors_total Store operations that failed, by store and operation.
# TYPE envoy_rls_store_errors_total counter
envoy_rls_store_errors_total{op="apply",store="memory"} 0
envoy_rls_store_errors_total{op="apply",store="redis"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "envoy_rls_store_errors_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "envoy_rls_store_duration_seconds"); err != nil || n != 2 {
		t.Fatalf("store duration series = %d (%v), want 2", n, err)
	}
}

func TestFailureModeAndBreaker(t *testing.T) {
	m := New(Options{})
	m.FailureModeDecision("allow")
	m.FailureModeDecision("allow")
	m.FailureModeDecision("deny")
	m.SetBreakerState("redis", breaker.Open.String())
	m.SetBreakerState("redis", breaker.HalfOpen.String())
	m.SetBreakerState("memcache", breaker.Closed.String())

	want := `
# HELP envoy_rls_circuit_breaker_state State of a store's circuit breaker: 1 for the current state, 0 for the others.
# TYPE envoy_rls_circuit_breaker_state gauge
envoy_rls_circuit_breaker_state{state="closed",store="memcache"} 1
envoy_rls_circuit_breaker_state{state="closed",store="redis"} 0
envoy_rls_circuit_breaker_state{state="half_open",store="memcache"} 0
envoy_rls_circuit_breaker_state{state="half_open",store="redis"} 1
envoy_rls_circuit_breaker_state{state="open",store="memcache"} 0
envoy_rls_circuit_breaker_state{state="open",store="redis"} 0
# HELP envoy_rls_failure_mode_decisions_total Requests decided by the failure mode because the store could not decide, by mode.
# TYPE envoy_rls_failure_mode_decisions_total counter
envoy_rls_failure_mode_decisions_total{mode="allow"} 2
envoy_rls_failure_mode_decisions_total{mode="deny"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"envoy_rls_circuit_breaker_state", "envoy_rls_failure_mode_decisions_total"); err != nil {
		t.Fatal(err)
	}

	// A state outside the known three drops back to 0 when the breaker
	// moves on.
	m.SetBreakerState("redis", "forced_open")
	m.SetBreakerState("redis", breaker.Closed.String())
	if got := testutil.ToFloat64(m.breaker.WithLabelValues("redis", "forced_open")); got != 0 {
		t.Errorf("forced_open = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.breaker.WithLabelValues("redis", breaker.Closed.String())); got != 1 {
		t.Errorf("closed = %v, want 1", got)
	}
}

func TestConfigLoads(t *testing.T) {
	m := New(Options{})
	m.ConfigLoaded(12, testTime)
	m.ConfigLoadFailed()
	m.ConfigLoadFailed()
	m.ConfigLoaded(7, testTime.Add(time.Minute))

	want := `
# HELP envoy_rls_config_last_success_timestamp_seconds Unix time of the last successful config load.
# TYPE envoy_rls_config_last_success_timestamp_seconds gauge
envoy_rls_config_last_success_timestamp_seconds 1.7673231055e+09
# HELP envoy_rls_config_loads_total Attempts to load the rate-limit config, by result (success, error).
# TYPE envoy_rls_config_loads_total counter
envoy_rls_config_loads_total{result="error"} 2
envoy_rls_config_loads_total{result="success"} 2
# HELP envoy_rls_config_rules Number of rules in the config being served.
# TYPE envoy_rls_config_rules gauge
envoy_rls_config_rules 7
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"envoy_rls_config_last_success_timestamp_seconds", "envoy_rls_config_loads_total", "envoy_rls_config_rules"); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryStoreAndLocalCache(t *testing.T) {
	m := New(Options{})
	var keys, evictions atomic.Int64
	keys.Store(42)
	evictions.Store(3)
	if err := m.RegisterMemoryStore(func() (int64, int64) { return keys.Load(), evictions.Load() }); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterMemoryStore(func() (int64, int64) { return 0, 0 }); err == nil {
		t.Error("a second RegisterMemoryStore succeeded")
	}
	if err := New(Options{}).RegisterMemoryStore(nil); err == nil {
		t.Error("RegisterMemoryStore(nil) succeeded")
	}
	m.LocalCacheHit()
	m.LocalCacheHit()
	m.LocalCacheHit()

	want := `
# HELP envoy_rls_local_cache_hits_total Descriptors answered over the limit from the local over-limit cache, without a store round trip.
# TYPE envoy_rls_local_cache_hits_total counter
envoy_rls_local_cache_hits_total 3
# HELP envoy_rls_memory_store_evictions_total Keys the in-memory store evicted to stay within its size bound.
# TYPE envoy_rls_memory_store_evictions_total counter
envoy_rls_memory_store_evictions_total 3
# HELP envoy_rls_memory_store_keys Keys held by the in-memory store.
# TYPE envoy_rls_memory_store_keys gauge
envoy_rls_memory_store_keys 42
`
	names := []string{"envoy_rls_local_cache_hits_total", "envoy_rls_memory_store_evictions_total", "envoy_rls_memory_store_keys"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	keys.Store(7)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(strings.Replace(want, "keys 42", "keys 7", 1)), names...); err != nil {
		t.Fatal(err)
	}
}

func TestStoreShed(t *testing.T) {
	m := New(Options{})
	m.StoreShed(true)
	m.StoreShed(true)
	m.StoreShed(false)
	var nilMetrics *Metrics
	nilMetrics.StoreShed(true) // a nil Metrics records nothing and does not panic
	want := `
# HELP envoy_rls_store_shed_total Requests shed before the store by --store-max-inflight (answered UNAVAILABLE "overloaded", or by the failure mode), by weight: heavy or light.
# TYPE envoy_rls_store_shed_total counter
envoy_rls_store_shed_total{weight="heavy"} 2
envoy_rls_store_shed_total{weight="light"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "envoy_rls_store_shed_total"); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerServesEveryFamily(t *testing.T) {
	m := New(Options{})
	m.ObserveRequest(ResultOK, time.Millisecond)
	m.ObserveStore("memory", "apply", time.Microsecond, nil)
	m.ConfigLoaded(1, testTime)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, name := range []string{
		"envoy_rls_request_duration_seconds_bucket{result=\"ok\",le=\"0.001\"} 1",
		"envoy_rls_store_duration_seconds_count{op=\"apply\",store=\"memory\"} 1",
		"envoy_rls_config_rules 1",
		"go_goroutines ",
		"process_start_time_seconds ",
		"promhttp_metric_handler_requests_total",
	} {
		if !strings.Contains(string(body), name) {
			t.Errorf("GET /metrics lacks %q", name)
		}
	}
}
