package server

import (
	"context"
	"testing"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

func headerMap(resp *rlsv3.RateLimitResponse) map[string]string {
	m := map[string]string{}
	for _, h := range resp.ResponseHeadersToAdd {
		m[h.Key] = h.Value
	}
	return m
}

func TestResponseHeadersAndBody(t *testing.T) {
	c, _, _ := serve(t, memStore(t), Options{Headers: Headers{Enabled: true, RetryAfter: "X-Retry-In"}, OverLimitBody: []byte(`{"error":"slow down"}`)})
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), desc("big", "x")}}
	resp, err := c.ShouldRateLimit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	h := headerMap(resp)
	// big (3/s, 2 left) is tighter than k (10/5m, 9 left).
	if h["RateLimit-Limit"] != "3" || h["RateLimit-Remaining"] != "2" || h["RateLimit-Reset"] != "1" || h["X-Retry-In"] != "" {
		t.Errorf("headers %v", h)
	}
	if resp.RawBody != nil {
		t.Errorf("body on OK: %q", resp.RawBody)
	}
	for i := 0; i < 3; i++ {
		resp, err = c.ShouldRateLimit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
	}
	h = headerMap(resp)
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || h["RateLimit-Remaining"] != "0" || h["X-Retry-In"] != "1" {
		t.Errorf("over limit: %v headers %v", resp.OverallCode, h)
	}
	if string(resp.RawBody) != `{"error":"slow down"}` {
		t.Errorf("body %q", resp.RawBody)
	}
	// Off by default.
	c2, _, _ := serve(t, memStore(t), Options{})
	resp, _ = c2.ShouldRateLimit(context.Background(), req)
	if len(resp.ResponseHeadersToAdd) != 0 || resp.DynamicMetadata != nil {
		t.Errorf("headers or metadata without the options: %v", resp)
	}
}

func TestDynamicMetadata(t *testing.T) {
	c, _, _ := serveRules(t, `
domain: d
descriptors:
  - key: model
    value: a
    quota_mode: true
    metadata: {backend: svc-a}
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: model
    value: b
    quota_mode: true
    metadata: {backend: svc-b}
    rate_limit: {unit: hour, requests_per_unit: 2}
`, Options{RequestMetadata: true})
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("model", "a"), desc("model", "b")}}
	if _, err := c.ShouldRateLimit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// a is spent, b is not: allowed, a is a violation, b's metadata is sent.
	resp, err := c.ShouldRateLimit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	md := resp.DynamicMetadata.AsMap()
	if resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("quota mode: %v", resp)
	}
	if md["quotaModeEnabled"] != true || len(md["quotaModeViolations"].([]any)) != 1 || md["quotaModeViolations"].([]any)[0] != float64(0) || md["backend"] != "svc-b" || md["domain"] != "d" {
		t.Fatalf("metadata %v", md)
	}
	// Both spent: denied.
	resp, err = c.ShouldRateLimit(context.Background(), req)
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("all quotas spent: %v %v", resp, err)
	}
}
