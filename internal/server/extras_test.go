package server

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func headerMap(resp *rlsv3.RateLimitResponse) map[string]string {
	m := map[string]string{}
	for _, h := range resp.ResponseHeadersToAdd {
		m[h.Key] = h.Value
	}
	return m
}

func TestResponseHeadersAndBody(t *testing.T) {
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v"), desc("big", "x")}}
	// big is 3 per second: the four calls must fall in one second. On a
	// loaded machine they may not; then the sequence runs again on a new
	// server, in the next second.
	for attempt := 1; ; attempt++ {
		c, _, _ := serve(t, memStore(t), Options{Headers: Headers{Enabled: true, RetryAfter: "X-Retry-In"}, OverLimitBody: []byte(`{"error":"slow down"}`)})
		second := time.Now().Unix()
		var resps []*rlsv3.RateLimitResponse
		for range 4 {
			resp, err := c.ShouldRateLimit(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			resps = append(resps, resp)
		}
		if time.Now().Unix() != second && attempt < 10 {
			continue
		}
		h := headerMap(resps[0])
		// big (3/s, 2 left) is tighter than k (10/5m, 9 left).
		if h["RateLimit-Limit"] != "3" || h["RateLimit-Remaining"] != "2" || h["RateLimit-Reset"] != "1" || h["X-Retry-In"] != "" {
			t.Errorf("headers %v", h)
		}
		if resps[0].RawBody != nil {
			t.Errorf("body on OK: %q", resps[0].RawBody)
		}
		resp := resps[3]
		h = headerMap(resp)
		if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || h["RateLimit-Remaining"] != "0" || h["X-Retry-In"] != "1" {
			t.Errorf("over limit: %v headers %v", resp.OverallCode, h)
		}
		if string(resp.RawBody) != `{"error":"slow down"}` {
			t.Errorf("body %q", resp.RawBody)
		}
		break
	}
	// Off by default.
	c2, _, _ := serve(t, memStore(t), Options{})
	resp, _ := c2.ShouldRateLimit(context.Background(), req)
	if len(resp.ResponseHeadersToAdd) != 0 || resp.DynamicMetadata != nil {
		t.Errorf("headers or metadata without the options: %v", resp)
	}
}

func TestDynamicMetadata(t *testing.T) {
	rules := `
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
    metadata: {backend: svc-b, nested: {x: 1}}
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: tier
    metadata: {backend: svc-c, nested: {x: 2, y: 3}, extra: e}
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: free
    metadata: {free: true}
    rate_limit: {unlimited: true}
`
	c, _, _ := serveRules(t, rules, Options{RequestMetadata: true, QuotaMetadata: true})
	hits := &rlcommon.RateLimitDescriptor{Entries: []*rlcommon.RateLimitDescriptor_Entry{{Key: "tier", Value: "gold"}},
		HitsAddend: wrapperspb.UInt64(1),
		Limit:      &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 7, Unit: typev3.RateLimitUnit_HOUR}}
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("model", "a"), desc("model", "b"), desc("tier", "t"), desc("free", "f")}}
	if _, err := c.ShouldRateLimit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// a is spent, b is not: allowed, a is a violation; b's and tier's
	// metadata are merged (b first wins, nested maps merge), a's (denied)
	// and free's (unlimited) are not.
	resp, err := c.ShouldRateLimit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("quota mode: %v", resp)
	}
	got, _ := json.Marshal(resp.DynamicMetadata.AsMap())
	want := `{"descriptors":[{"entries":["model=a"]},{"entries":["model=b"]},{"entries":["tier=t"]},{"entries":["free=f"]}],` +
		`"domain":"d","envoy_rls_quota":{"quotaModeEnabled":true,"quotaModeViolations":[0]},` +
		`"metadata":{"backend":"svc-b","extra":"e","nested":{"x":1,"y":3}}}`
	if string(got) != want {
		t.Fatalf("metadata\n got %s\nwant %s", got, want)
	}
	// Both spent: denied.
	resp, err = c.ShouldRateLimit(context.Background(), req)
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("all quotas spent: %v %v", resp, err)
	}

	// The reference's shape exactly, with no extension: a descriptor's
	// limit override and hits_addend, the request's hits_addend.
	c2, _, _ := serveRules(t, rules, Options{RequestMetadata: true})
	resp, err = c2.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", HitsAddend: 2,
		Descriptors: []*rlcommon.RateLimitDescriptor{hits, desc("model", "a")}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = json.Marshal(resp.DynamicMetadata.AsMap())
	want = `{"descriptors":[{"entries":["tier=gold"],"hitsAddend":1,"limit":"requests_per_unit:7 unit:HOUR"},{"entries":["model=a"]}],` +
		`"domain":"d","hitsAddend":2}`
	if string(got) != want {
		t.Fatalf("metadata\n got %s\nwant %s", got, want)
	}

	// Without the options: no dynamic metadata at all, as the reference.
	c3, _, _ := serveRules(t, rules, Options{})
	resp, err = c3.ShouldRateLimit(context.Background(), req)
	if err != nil || resp.DynamicMetadata != nil {
		t.Fatalf("metadata without the options: %v %v", resp.DynamicMetadata, err)
	}
}

func TestOverrideText(t *testing.T) {
	for _, c := range []struct {
		in   *rlcommon.RateLimitDescriptor_RateLimitOverride
		want string
	}{
		{&rlcommon.RateLimitDescriptor_RateLimitOverride{}, ""},
		{&rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 3}, "requests_per_unit:3"},
		{&rlcommon.RateLimitDescriptor_RateLimitOverride{Unit: typev3.RateLimitUnit_DAY}, "unit:DAY"},
		{&rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 3, Unit: typev3.RateLimitUnit_MINUTE, UnitMultiplier: wrapperspb.UInt32(5)},
			"requests_per_unit:3 unit:MINUTE unit_multiplier:{value:5}"},
	} {
		if got := overrideText(c.in); got != c.want {
			t.Errorf("overrideText(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
