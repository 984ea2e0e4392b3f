package telemetry

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

var ruleMetricNames = []string{
	"envoy_rls_rule_hits_total",
	"envoy_rls_rule_over_limit_total",
	"envoy_rls_rule_near_limit_total",
	"envoy_rls_rule_within_limit_total",
	"envoy_rls_rule_shadow_mode_total",
	"envoy_rls_rule_exempted_total",
}

func limitOf(requests int64) *descriptors.RateLimit {
	return &descriptors.RateLimit{Limit: strategies.Limit{Requests: requests, Period: 60_000_000}}
}

func ruleWith(path string, rl *descriptors.RateLimit) *descriptors.Rule {
	r := &descriptors.Rule{Key: "remote_address", Path: path, Limits: []*descriptors.RateLimit{rl}}
	rl.Rule = r
	return r
}

func request(domain string, values ...string) *limiter.Request {
	req := &limiter.Request{Domain: domain}
	for _, v := range values {
		req.Descriptors = append(req.Descriptors, limiter.Descriptor{Entries: []descriptors.Entry{{Key: "remote_address", Value: v}}})
	}
	return req
}

func TestObserveStatusesCountsEachOutcome(t *testing.T) {
	m := New(Options{})
	rl := limitOf(10)
	rule := ruleWith("edge.remote_address", rl)
	shadowRule := ruleWith("edge.shadowed", limitOf(10))
	shadowRule.ShadowMode = true
	unlimited := &descriptors.RateLimit{Unlimited: true}
	unlimitedRule := ruleWith("edge.internal", unlimited)
	override := limitOf(5)

	statuses := []limiter.Status{
		{Code: limiter.OK, Rule: rule, Limit: rl, Remaining: 5, Hits: 1},                                         // within
		{Code: limiter.OK, Rule: rule, Limit: rl, Remaining: 1, Hits: 2},                                         // within, 1 near (8 → 9)
		{Code: limiter.OverLimit, Rule: rule, Limit: rl, Available: 0, Hits: 3},                                  // over 3
		{Code: limiter.OK, Rule: rule, Exempt: true, Hits: 1},                                                    // exempted
		{Code: limiter.OK, Rule: shadowRule, Limit: shadowRule.Limits[0], Shadowed: true, Available: 1, Hits: 2}, // over 1 + shadow 1, near 1
		{Code: limiter.OK, Rule: unlimitedRule, Unlimited: true, Remaining: 1<<32 - 1, Hits: 1},                  // within, never near
		{Code: limiter.OK, Hits: 1},                                // unmatched: nothing
		{Code: limiter.OK, Rule: rule, Replaced: true, Hits: 1},    // replaced: nothing
		{Code: limiter.OverLimit, Limit: override, Hits: 1},        // override, over
		{Code: limiter.OK, Limit: override, Remaining: 4, Hits: 1}, // override, within
	}
	req := request("edge", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	m.ObserveStatuses("edge", req, statuses)

	want := `
# HELP envoy_rls_rule_exempted_total Hits whose client value the rule exempts: no limit applied.
# TYPE envoy_rls_rule_exempted_total counter
envoy_rls_rule_exempted_total{domain="edge",rule="edge.i",value=""} 0
envoy_rls_rule_exempted_total{domain="edge",rule="edge.internal",value=""} 0
envoy_rls_rule_exempted_total{domain="edge",rule="edge.j",value=""} 0
envoy_rls_rule_exempted_total{domain="edge",rule="edge.remote_address",value=""} 1
envoy_rls_rule_exempted_total{domain="edge",rule="edge.shadowed",value=""} 0
# HELP envoy_rls_rule_hits_total Hits of the descriptors that matched the rule (or carried a limit override), by the reference's stats key.
# TYPE envoy_rls_rule_hits_total counter
envoy_rls_rule_hits_total{domain="edge",rule="edge.i",value=""} 1
envoy_rls_rule_hits_total{domain="edge",rule="edge.internal",value=""} 1
envoy_rls_rule_hits_total{domain="edge",rule="edge.j",value=""} 1
envoy_rls_rule_hits_total{domain="edge",rule="edge.remote_address",value=""} 7
envoy_rls_rule_hits_total{domain="edge",rule="edge.shadowed",value=""} 2
# HELP envoy_rls_rule_near_limit_total Hits that took the count above floor(limit × near-limit ratio) without passing the limit.
# TYPE envoy_rls_rule_near_limit_total counter
envoy_rls_rule_near_limit_total{domain="edge",rule="edge.i",value=""} 0
envoy_rls_rule_near_limit_total{domain="edge",rule="edge.internal",value=""} 0
envoy_rls_rule_near_limit_total{domain="edge",rule="edge.j",value=""} 0
envoy_rls_rule_near_limit_total{domain="edge",rule="edge.remote_address",value=""} 1
envoy_rls_rule_near_limit_total{domain="edge",rule="edge.shadowed",value=""} 1
# HELP envoy_rls_rule_over_limit_total Hits over the rule's limit, shadow-mode ones included, split as the reference splits them.
# TYPE envoy_rls_rule_over_limit_total counter
envoy_rls_rule_over_limit_total{domain="edge",rule="edge.i",value=""} 1
envoy_rls_rule_over_limit_total{domain="edge",rule="edge.internal",value=""} 0
envoy_rls_rule_over_limit_total{domain="edge",rule="edge.j",value=""} 0
envoy_rls_rule_over_limit_total{domain="edge",rule="edge.remote_address",value=""} 3
envoy_rls_rule_over_limit_total{domain="edge",rule="edge.shadowed",value=""} 1
# HELP envoy_rls_rule_shadow_mode_total Hits over the limit of a shadow-mode rule, answered OK; a subset of over_limit.
# TYPE envoy_rls_rule_shadow_mode_total counter
envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.i",value=""} 0
envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.internal",value=""} 0
envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.j",value=""} 0
envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.remote_address",value=""} 0
envoy_rls_rule_shadow_mode_total{domain="edge",rule="edge.shadowed",value=""} 1
# HELP envoy_rls_rule_within_limit_total Hits of allowed descriptors (unlimited rules included).
# TYPE envoy_rls_rule_within_limit_total counter
envoy_rls_rule_within_limit_total{domain="edge",rule="edge.i",value=""} 0
envoy_rls_rule_within_limit_total{domain="edge",rule="edge.internal",value=""} 1
envoy_rls_rule_within_limit_total{domain="edge",rule="edge.j",value=""} 1
envoy_rls_rule_within_limit_total{domain="edge",rule="edge.remote_address",value=""} 3
envoy_rls_rule_within_limit_total{domain="edge",rule="edge.shadowed",value=""} 0
`
	// The override descriptors are labelled with their own stats key
	// (request("edge", ...) gives entries remote_address=<value>).
	want = strings.ReplaceAll(want, `rule="edge.i"`, `rule="edge.remote_address_i"`)
	want = strings.ReplaceAll(want, `rule="edge.j"`, `rule="edge.remote_address_j"`)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), ruleMetricNames...); err != nil {
		t.Fatal(err)
	}
}

func TestObserveStatusesReplacedRuleWithAnotherLimitCounts(t *testing.T) {
	m := New(Options{})
	a, b := limitOf(10), limitOf(20)
	rule := &descriptors.Rule{Path: "edge.k", Limits: []*descriptors.RateLimit{a, b}}
	// One of the rule's two limits was replaced; the other decided.
	m.ObserveStatuses("edge", request("edge", "x"), []limiter.Status{{Rule: rule, Limit: b, Remaining: 15, Replaced: true, Hits: 1}})
	if got := testutil.ToFloat64(m.rules.within.WithLabelValues("edge", "edge.k", "")); got != 1 {
		t.Fatalf("within_limit = %v, want 1", got)
	}
}

// TestHitSplitAsReference transcribes the statistics the reference's
// test/redis/fixed_cache_impl_test.go expects (near-limit ratio 0.8):
// the count before the request, its hits, and how they split.
func TestHitSplitAsReference(t *testing.T) {
	tests := []struct {
		limit, before, hits int64
		denied              bool
		over, near, within  uint64
	}{
		{15, 10, 1, false, 0, 0, 1}, // TestNearLimit: 11 of 15, threshold 12
		{15, 12, 1, false, 0, 1, 1}, // 13 of 15: above 12
		{15, 15, 1, true, 1, 0, 0},  // 16 of 15
		{20, 2, 3, false, 0, 0, 3},  // hits_addend 3, 5 of 20
		{8, 5, 2, false, 0, 1, 2},   // 7 of 8, threshold floor(6.4) = 6: one hit past it
		{20, 16, 3, false, 0, 3, 3}, // 19 of 20: every hit past 16
		{20, 19, 3, true, 2, 1, 0},  // 22 of 20: 2 over, 1 near
		{20, 15, 7, true, 2, 4, 0},  // 22 of 20: 2 over, 4 near (17..20)
		{10, 27, 3, true, 3, 0, 0},  // already over: all over
		{10, 7, 1, false, 0, 0, 1},  // 8 of 10: not above 8
		{10, 8, 1, false, 0, 1, 1},  // 9 of 10: above 8 (the reference's threshold, not one more)
	}
	m := New(Options{NearLimitRatio: 0.8})
	for _, tt := range tests {
		rl := limitOf(tt.limit)
		st := limiter.Status{Limit: rl, Hits: tt.hits}
		if tt.denied {
			st.Code, st.Available = limiter.OverLimit, uint32(max(tt.limit-tt.before, 0))
		} else {
			st.Remaining = uint32(tt.limit - tt.before - tt.hits)
		}
		got := m.split(&st, uint64(tt.hits))
		if got != (hitSplit{over: tt.over, near: tt.near, within: tt.within}) {
			t.Errorf("limit %d, before %d, hits %d, denied %v: %+v, want over %d near %d within %d",
				tt.limit, tt.before, tt.hits, tt.denied, got, tt.over, tt.near, tt.within)
		}
	}
}

func TestNearThreshold(t *testing.T) {
	for _, tt := range []struct {
		limit uint64
		ratio float32
		want  uint64
	}{
		{10, 0.8, 8}, {15, 0.8, 12}, {8, 0.8, 6}, {20, 0.8, 16}, {3, 0.5, 1}, {10, 0.7, 7}, {0, 0.8, 0}, {1, 1, 1},
	} {
		if got := nearThreshold(tt.limit, tt.ratio); got != tt.want {
			t.Errorf("nearThreshold(%d, %v) = %d, want %d", tt.limit, tt.ratio, got, tt.want)
		}
	}
}

func TestRuleLabelIsTheStatsKey(t *testing.T) {
	m := New(Options{})
	rl := limitOf(10)
	rule := ruleWith("edge.remote_address", rl)
	rule.DetailedMetric = true
	parent := &descriptors.Rule{Key: "tenant", Path: "edge.tenant", ValueToMetric: true}
	child := &descriptors.Rule{Key: "path", Path: "edge.tenant.path", Parent: parent, Depth: 1, Limits: []*descriptors.RateLimit{rl}}

	req := request("edge", "10.0.0.1", "10.0.0.2", "10.0.0.1")
	req.Descriptors = append(req.Descriptors, limiter.Descriptor{Entries: []descriptors.Entry{{Key: "tenant", Value: "acme"}, {Key: "path", Value: "/api"}}})
	m.ObserveStatuses("edge", req, []limiter.Status{
		{Rule: rule, Limit: rl, Remaining: 9, Hits: 1},
		{Rule: rule, Limit: rl, Remaining: 9, Hits: 1},
		{Rule: rule, Limit: rl, Code: limiter.OverLimit, Hits: 1},
		{Rule: child, Limit: rl, Remaining: 9, Hits: 1},
	})
	for _, tt := range []struct {
		rule       string
		hits, over float64
	}{
		{"edge.remote_address_10.0.0.1", 2, 1},
		{"edge.remote_address_10.0.0.2", 1, 0},
		{"edge.tenant_acme.path", 1, 0},
	} {
		if got := testutil.ToFloat64(m.rules.hits.WithLabelValues("edge", tt.rule, "")); got != tt.hits {
			t.Errorf("hits{%s} = %v, want %v", tt.rule, got, tt.hits)
		}
		if got := testutil.ToFloat64(m.rules.over.WithLabelValues("edge", tt.rule, "")); got != tt.over {
			t.Errorf("over{%s} = %v, want %v", tt.rule, got, tt.over)
		}
	}
	if n := testutil.CollectAndCount(m.rules.hits); n != 3 {
		t.Errorf("hits series = %d, want 3", n)
	}
}

func TestInvalidUTF8ValueIsSanitised(t *testing.T) {
	m := New(Options{})
	rl := limitOf(10)
	rule := ruleWith("edge.remote_address", rl)
	rule.DetailedMetric = true
	m.ObserveStatuses("edge", request("edge", "a\xffb"), []limiter.Status{{Rule: rule, Limit: rl, Remaining: 9, Hits: 1}})
	if got := testutil.ToFloat64(m.rules.hits.WithLabelValues("edge", "edge.remote_address_a\uFFFDb", "")); got != 1 {
		t.Fatalf("hits = %v, want 1", got)
	}
}

// TestCardinalityIsBounded feeds 100,000 distinct client values and
// checks the number of series in the registry: one per rule for a plain
// rule, MaxValueSeries + 1 for a detailed one; and as many unknown
// domains, bounded the same way.
func TestCardinalityIsBounded(t *testing.T) {
	const values = 100_000
	const maxValues = 50
	m := New(Options{MaxValueSeries: maxValues, ReferenceMetrics: true})
	plainLimit, detailedLimit := limitOf(10), limitOf(10)
	plain := ruleWith("edge.remote_address", plainLimit)
	detailed := ruleWith("edge.user", detailedLimit)
	detailed.DetailedMetric = true

	req := request("edge", "", "")
	st := make([]limiter.Status, 3)
	for i := range values {
		v := "10." + strconv.Itoa(i>>16) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		req.Descriptors[0].Entries[0].Value = v
		req.Descriptors[1].Entries[0].Value = v
		st[0] = limiter.Status{Rule: plain, Limit: plainLimit, Remaining: 5, Hits: 1}
		st[1] = limiter.Status{Rule: detailed, Limit: detailedLimit, Remaining: 5, Hits: 1}
		st[2] = limiter.Status{} // unmatched
		m.ObserveStatuses("edge", req, st[:2])
		m.ObserveStatuses("edge", request("edge", v), st[2:])
		m.DomainNotFound(v)
	}
	for _, name := range ruleMetricNames {
		n, err := testutil.GatherAndCount(m.Registry(), name)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + maxValues + 1; n != want {
			t.Errorf("%s: %d series, want %d", name, n, want)
		}
	}
	for _, name := range []string{"ratelimit_service_rate_limit_total_hits", "envoy_rls_domain_not_found_total"} {
		n, err := testutil.GatherAndCount(m.Registry(), name)
		if err != nil {
			t.Fatal(err)
		}
		if n > maxValues+2 {
			t.Errorf("%s: %d series, want at most %d", name, n, maxValues+2)
		}
	}
	if got := testutil.ToFloat64(m.rules.hits.WithLabelValues("edge", "edge.remote_address", "")); got != values {
		t.Errorf("plain hits = %v, want %d", got, values)
	}
	if got := testutil.ToFloat64(m.rules.hits.WithLabelValues("edge", "edge.user", OtherValue)); got != values-maxValues {
		t.Errorf("_other_ hits = %v, want %d", got, values-maxValues)
	}
	if got := testutil.ToFloat64(m.domainNotFound.WithLabelValues(OtherValue)); got != values-maxValues {
		t.Errorf("_other_ domains = %v, want %d", got, values-maxValues)
	}
}

func TestReloadedRuleContinuesItsSeries(t *testing.T) {
	m := New(Options{})
	rl := limitOf(10)
	old := ruleWith("edge.remote_address", rl)
	m.ObserveStatuses("edge", request("edge", "a"), []limiter.Status{{Rule: old, Limit: rl, Remaining: 9, Hits: 1}})
	m.ConfigLoaded(1, testTime)
	rl2 := limitOf(10)
	fresh := ruleWith("edge.remote_address", rl2)
	m.ObserveStatuses("edge", request("edge", "a"), []limiter.Status{{Rule: fresh, Limit: rl2, Remaining: 9, Hits: 1}})
	if got := testutil.ToFloat64(m.rules.hits.WithLabelValues("edge", "edge.remote_address", "")); got != 2 {
		t.Fatalf("hits = %v, want 2", got)
	}
	n := 0
	m.rules.byRule.Range(func(k, _ any) bool {
		if k.(*descriptors.Rule) == old {
			t.Error("the old rule is still cached after ConfigLoaded")
		}
		n++
		return true
	})
	if n != 1 {
		t.Errorf("%d cached rules, want 1", n)
	}
}

func BenchmarkObserveStatuses(b *testing.B) {
	rl := limitOf(100)
	plain := ruleWith("edge.remote_address", rl)
	detailed := ruleWith("edge.user", limitOf(100))
	detailed.DetailedMetric = true
	parent := &descriptors.Rule{Key: "tenant", Path: "edge.tenant"}
	twoLevels := &descriptors.Rule{Key: "path", Path: "edge.tenant.path", Parent: parent, Depth: 1, ValueToMetric: true, Limits: []*descriptors.RateLimit{limitOf(100)}}
	twoReq := &limiter.Request{Domain: "edge", Descriptors: []limiter.Descriptor{{Entries: []descriptors.Entry{{Key: "tenant", Value: "acme"}, {Key: "path", Value: "/api/v1/orders"}}}}}
	cases := []struct {
		name string
		rule *descriptors.Rule
		req  *limiter.Request
	}{
		{"plain", plain, request("edge", "10.0.0.1")},
		{"detailed", detailed, request("edge", "10.0.0.1")},
		{"detailed-two-levels", twoLevels, twoReq},
		{"override", nil, request("edge", "10.0.0.1")},
	}
	for _, c := range cases {
		st := []limiter.Status{{Rule: c.rule, Limit: rl, Remaining: 10, Hits: 1}}
		b.Run(c.name, func(b *testing.B) {
			m := New(Options{})
			m.ObserveStatuses("edge", c.req, st)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m.ObserveStatuses("edge", c.req, st)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			m := New(Options{})
			m.ObserveStatuses("edge", c.req, st)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.ObserveStatuses("edge", c.req, st)
				}
			})
		})
	}
}

func BenchmarkObserveRequestAndStore(b *testing.B) {
	m := New(Options{})
	m.ObserveStore("memory", "apply", time.Microsecond, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveStore("memory", "apply", time.Microsecond, nil)
			m.ObserveRequest(ResultOK, 50*time.Microsecond)
		}
	})
}

// TestObserveStatusesConcurrently runs requests, config loads and scrapes
// at once (meaningful under -race) and checks that no hit is lost.
func TestObserveStatusesConcurrently(t *testing.T) {
	const workers, perWorker, maxValues = 8, 2000, 20
	m := New(Options{MaxValueSeries: maxValues})
	rl := limitOf(10)
	rule := ruleWith("edge.user", rl)
	rule.DetailedMetric = true
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			req := request("edge", "")
			st := make([]limiter.Status, 1)
			for i := range perWorker {
				req.Descriptors[0].Entries[0].Value = strconv.Itoa((w*perWorker + i) % 50)
				st[0] = limiter.Status{Rule: rule, Limit: rl, Remaining: uint32(i % 10), Hits: 1}
				m.ObserveStatuses("edge", req, st)
				if i%500 == 0 {
					m.ConfigLoaded(1, testTime)
					if _, err := m.Registry().Gather(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	total := 0.0
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "envoy_rls_rule_hits_total" {
			for _, metric := range mf.Metric {
				total += metric.Counter.GetValue()
				series++
			}
		}
	}
	if total != workers*perWorker {
		t.Errorf("hits = %v, want %d", total, workers*perWorker)
	}
	if series != maxValues+1 {
		t.Errorf("%d hits series, want %d", series, maxValues+1)
	}
}
