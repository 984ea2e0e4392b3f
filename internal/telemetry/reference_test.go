package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

func TestRefLabels(t *testing.T) {
	// The statsd mapping splits ratelimit.service.rate_limit.<key>.<stat>
	// at its dots after the reference sanitised the key.
	for _, tt := range []struct {
		key  string
		want [3]string
	}{
		{"edge.remote_address", [3]string{"edge", "remote_address", ""}},
		{"edge.key1_value1.subkey1", [3]string{"edge", "key1_value1", "subkey1"}},
		{"d.a.b.c.d", [3]string{"d", "a", "b"}},
		{"edge.remote_address_10.0.0.1", [3]string{"edge", "remote_address_10_0_0_1", ""}},
		{"edge.path_/a:b|c", [3]string{"edge", "path_/a_b_c", ""}},
		{"edge", [3]string{"edge", "", ""}},
	} {
		if got := refLabels(tt.key); got != tt.want {
			t.Errorf("refLabels(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestReferenceMetrics(t *testing.T) {
	m := New(Options{ReferenceMetrics: true})
	rl := limitOf(20)
	rule := ruleWith("edge.key1_value1", rl)
	m.ObserveStatuses("edge", request("edge", "x"), []limiter.Status{
		{Rule: rule, Limit: rl, Code: limiter.OverLimit, Available: 1, Hits: 3}, // 19 + 3 of 20: 2 over, 1 near
	})
	shadow := ruleWith("edge.bot", limitOf(1))
	shadow.ShadowMode = true
	m.ObserveStatuses("edge", request("edge", "y"), []limiter.Status{{Rule: shadow, Limit: shadow.Limits[0], Shadowed: true, Hits: 1}})
	m.ObserveRequest(ResultOK, time.Millisecond)
	m.ObserveRequest(ResultError, time.Millisecond)
	m.ObserveRequest(ResultInvalid, time.Millisecond)
	m.ConfigLoaded(1, testTime)
	m.ConfigLoadFailed()
	want := `
# HELP ratelimit_service_config_load_error envoyproxy/ratelimit's failed config loads.
# TYPE ratelimit_service_config_load_error counter
ratelimit_service_config_load_error 1
# HELP ratelimit_service_config_load_success envoyproxy/ratelimit's successful config loads.
# TYPE ratelimit_service_config_load_success counter
ratelimit_service_config_load_success 1
# HELP ratelimit_service_rate_limit_near_limit envoyproxy/ratelimit's near_limit of a stats key: hits past floor(limit × near-limit ratio).
# TYPE ratelimit_service_rate_limit_near_limit counter
ratelimit_service_rate_limit_near_limit{domain="edge",key1="bot",key2=""} 0
ratelimit_service_rate_limit_near_limit{domain="edge",key1="key1_value1",key2=""} 1
# HELP ratelimit_service_rate_limit_over_limit envoyproxy/ratelimit's over_limit of a stats key: hits over the limit.
# TYPE ratelimit_service_rate_limit_over_limit counter
ratelimit_service_rate_limit_over_limit{domain="edge",key1="bot",key2=""} 1
ratelimit_service_rate_limit_over_limit{domain="edge",key1="key1_value1",key2=""} 2
# HELP ratelimit_service_rate_limit_shadow_mode envoyproxy/ratelimit's shadow_mode of a stats key: over-limit hits answered OK by shadow mode.
# TYPE ratelimit_service_rate_limit_shadow_mode counter
ratelimit_service_rate_limit_shadow_mode{domain="edge",key1="bot",key2=""} 1
ratelimit_service_rate_limit_shadow_mode{domain="edge",key1="key1_value1",key2=""} 0
# HELP ratelimit_service_rate_limit_total_hits envoyproxy/ratelimit's total_hits of a stats key: every hit of a matched limit.
# TYPE ratelimit_service_rate_limit_total_hits counter
ratelimit_service_rate_limit_total_hits{domain="edge",key1="bot",key2=""} 1
ratelimit_service_rate_limit_total_hits{domain="edge",key1="key1_value1",key2=""} 3
# HELP ratelimit_service_rate_limit_within_limit envoyproxy/ratelimit's within_limit of a stats key: hits of allowed requests.
# TYPE ratelimit_service_rate_limit_within_limit counter
ratelimit_service_rate_limit_within_limit{domain="edge",key1="bot",key2=""} 0
ratelimit_service_rate_limit_within_limit{domain="edge",key1="key1_value1",key2=""} 0
# HELP ratelimit_service_should_rate_limit_error envoyproxy/ratelimit's failed ShouldRateLimit calls, by err_type (redis_error: the store failed; service_error: a malformed request).
# TYPE ratelimit_service_should_rate_limit_error counter
ratelimit_service_should_rate_limit_error{err_type="redis_error"} 1
ratelimit_service_should_rate_limit_error{err_type="service_error"} 1
# HELP ratelimit_service_total_requests envoyproxy/ratelimit's gRPC requests, by method.
# TYPE ratelimit_service_total_requests counter
ratelimit_service_total_requests{grpc_method="ShouldRateLimit"} 3
`
	names := []string{"ratelimit_service_config_load_error", "ratelimit_service_config_load_success",
		"ratelimit_service_rate_limit_near_limit", "ratelimit_service_rate_limit_over_limit", "ratelimit_service_rate_limit_shadow_mode",
		"ratelimit_service_rate_limit_total_hits", "ratelimit_service_rate_limit_within_limit",
		"ratelimit_service_should_rate_limit_error", "ratelimit_service_total_requests"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(m.Registry(), "ratelimit_service_response_time_seconds"); n != 1 {
		t.Errorf("response_time series %d, want 1", n)
	}

	// Served in the classic text format even to a scraper that prefers
	// OpenMetrics, so the counters keep the names without _total.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(resp.Header.Get("Content-Type"), "openmetrics") || !strings.Contains(string(body), "\nratelimit_service_total_requests{") {
		t.Errorf("content type %q; body has the reference's names: %v", resp.Header.Get("Content-Type"), strings.Contains(string(body), "ratelimit_service_total_requests{"))
	}
}

func TestReferenceMetricsOffByDefault(t *testing.T) {
	m := New(Options{})
	rl := limitOf(20)
	m.ObserveStatuses("edge", request("edge", "x"), []limiter.Status{{Rule: ruleWith("edge.k", rl), Limit: rl, Remaining: 3, Hits: 1}})
	m.ObserveRequest(ResultOK, time.Millisecond)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "ratelimit_service_") {
			t.Errorf("%s exported without ReferenceMetrics", mf.GetName())
		}
	}
}
