package limiter_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
)

// fakeClock is a per-test clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time                { return c.t }
func (c *fakeClock) Add(d time.Duration)           { c.t = c.t.Add(d) }
func newClock(unixSec int64) *fakeClock            { return &fakeClock{t: time.Unix(unixSec, 0)} }
func e(k, v string) descriptors.Entry              { return descriptors.Entry{Key: k, Value: v} }
func d(es ...descriptors.Entry) limiter.Descriptor { return limiter.Descriptor{Entries: es} }

// rig is a Limiter over a memory store with the given rules.
type rig struct {
	t     *testing.T
	lim   *limiter.Limiter
	clock *fakeClock
	store *memory.Store
}

func newRig(t *testing.T, yaml string, opts ...func(*limiter.Options)) *rig {
	t.Helper()
	cfg, err := descriptors.Parse(map[string][]byte{"rules.yaml": []byte(yaml)})
	if err != nil {
		t.Fatal(err)
	}
	// 1_700_000_080 is 40 s into a minute, so minute windows have 20 s left.
	clock := newClock(1_700_000_080)
	store := memory.New(memory.Options{})
	t.Cleanup(func() { store.Close() })
	o := limiter.Options{Store: store, Now: clock.Now}
	for _, f := range opts {
		f(&o)
	}
	lim, err := limiter.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, lim: lim, clock: clock, store: store}
}

func (r *rig) do(req *limiter.Request) (bool, []limiter.Status) {
	r.t.Helper()
	out := make([]limiter.Status, len(req.Descriptors))
	over, err := r.lim.ShouldRateLimit(context.Background(), req, out)
	if err != nil {
		r.t.Fatal(err)
	}
	return over, out
}

func (r *rig) one(domain string, ds ...limiter.Descriptor) (bool, []limiter.Status) {
	r.t.Helper()
	return r.do(&limiter.Request{Domain: domain, Descriptors: ds})
}

// The reference service's README examples, checked request by request.
const messaging = `
domain: messaging
descriptors:
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit:
          unit: day
          requests_per_unit: 5
  - key: to_number
    rate_limit:
      unit: day
      requests_per_unit: 100
  - key: to_number
    value: "*"
    share_threshold: true
    descriptors:
      - key: tier
        rate_limit: {unit: minute, requests_per_unit: 2}
`

func TestReferenceNestedAndDepthRule(t *testing.T) {
	r := newRig(t, messaging)
	// (message_type=marketing, to_number=X): 5 a day per number.
	for i := 1; i <= 6; i++ {
		over, st := r.one("messaging", d(e("message_type", "marketing"), e("to_number", "2061111111")))
		if want := i == 6; over != want || st[0].Limit == nil || st[0].Limit.RequestsPerUnit != 5 {
			t.Fatalf("request %d: over %v, status %+v", i, over, st[0])
		}
		if i < 6 && st[0].Remaining != uint32(5-i) {
			t.Fatalf("request %d: remaining %d", i, st[0].Remaining)
		}
	}
	// Another number has its own counter.
	if over, st := r.one("messaging", d(e("message_type", "marketing"), e("to_number", "2062222222"))); over || st[0].Remaining != 4 {
		t.Fatalf("second number: %v %+v", over, st[0])
	}
	// A shallower request matches only its own level: (message_type) alone has no limit.
	if _, st := r.one("messaging", d(e("message_type", "marketing"))); st[0].Limit != nil {
		t.Fatalf("shallow request got a limit: %+v", st[0])
	}
	// Deeper than the config: no limit.
	if _, st := r.one("messaging", d(e("to_number", "1"), e("tier", "a"), e("extra", "x"))); st[0].Limit != nil {
		t.Fatalf("deep request got a limit: %+v", st[0])
	}
	// to_number alone: 100 a day (key-only beats nothing; the exact-value
	// rule is missing, and the wildcard rule has no limit at this depth? It
	// does match first: a wildcard beats the key-only rule).
	_, st := r.one("messaging", d(e("to_number", "555")))
	if st[0].Limit != nil {
		t.Fatalf("to_number alone matched the wildcard rule, which has no limit at depth 1: %+v", st[0])
	}
}

func TestShareThresholdSharesOneCounter(t *testing.T) {
	r := newRig(t, messaging)
	// Wildcard with share_threshold: every number shares the tier counter.
	r.one("messaging", d(e("to_number", "1"), e("tier", "gold")))
	_, st := r.one("messaging", d(e("to_number", "2"), e("tier", "gold")))
	if st[0].Remaining != 0 || st[0].Code != limiter.OK {
		t.Fatalf("second request: %+v", st[0])
	}
	over, st := r.one("messaging", d(e("to_number", "3"), e("tier", "gold")))
	if !over || st[0].Code != limiter.OverLimit {
		t.Fatalf("third request should be over: %+v", st[0])
	}
	// The tier value is still the client's identifier.
	if over, _ := r.one("messaging", d(e("to_number", "3"), e("tier", "silver"))); over {
		t.Fatal("another tier shares the counter")
	}
}

func TestWindowResetsAtTheEpochAlignedBoundary(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: k
    rate_limit: {unit: minute, requests_per_unit: 2}
`)
	for i := 0; i < 2; i++ {
		if over, st := r.one("d", d(e("k", "v"))); over || st[0].Reset != 20*1e6 {
			t.Fatalf("request %d: %v %+v", i, over, st[0])
		}
	}
	if over, _ := r.one("d", d(e("k", "v"))); !over {
		t.Fatal("third request in the window admitted")
	}
	r.clock.Add(20 * time.Second) // the next minute starts
	if over, st := r.one("d", d(e("k", "v"))); over || st[0].Remaining != 1 || st[0].Reset != 60*1e6 {
		t.Fatalf("new window: %v %+v", over, st[0])
	}
}

func TestHitsAddend(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: k
    rate_limit: {unit: hour, requests_per_unit: 10}
`)
	// Request-level hits_addend.
	if _, st := r.do(&limiter.Request{Domain: "d", HitsAddend: 4, Descriptors: []limiter.Descriptor{d(e("k", "a"))}}); st[0].Remaining != 6 {
		t.Fatalf("hits 4: %+v", st[0])
	}
	// A descriptor's own hits win; 0 checks without counting.
	desc := d(e("k", "a"))
	desc.HitsSet, desc.Hits = true, 0
	if _, st := r.do(&limiter.Request{Domain: "d", HitsAddend: 9, Descriptors: []limiter.Descriptor{desc}}); st[0].Remaining != 6 || st[0].Code != limiter.OK {
		t.Fatalf("check: %+v", st[0])
	}
	desc.Hits = 7 // 4 + 7 > 10: over, and like the reference it reports 0 remaining
	if over, st := r.do(&limiter.Request{Domain: "d", Descriptors: []limiter.Descriptor{desc}}); !over || st[0].Remaining != 0 || st[0].RetryAfter <= 0 {
		t.Fatalf("hits 7: %v %+v", over, st[0])
	}
	// Hits beyond what the limit can ever admit: over, no retry, and 0
	// remaining as the reference reports every denial (nothing consumed:
	// the check below still sees 6).
	desc.Hits = 11
	if over, st := r.do(&limiter.Request{Domain: "d", Descriptors: []limiter.Descriptor{desc}}); !over || !st[0].Exceeds || st[0].Remaining != 0 || st[0].RetryAfter != 0 {
		t.Fatalf("hits 11: %v %+v", over, st[0])
	}
	desc.Hits = 0
	if _, st := r.do(&limiter.Request{Domain: "d", Descriptors: []limiter.Descriptor{desc}}); st[0].Remaining != 6 {
		t.Fatalf("check after hits 11: %+v", st[0])
	}
	// Refund gives back, never below an empty counter.
	ref := d(e("k", "a"))
	ref.HitsSet, ref.Hits, ref.Negative = true, 100, true
	if _, st := r.do(&limiter.Request{Domain: "d", Descriptors: []limiter.Descriptor{ref}}); st[0].Remaining != 10 {
		t.Fatalf("refund: %+v", st[0])
	}
}

func TestUnlimitedZeroAndUnknown(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: k
    value: free
    rate_limit: {unlimited: true}
  - key: k
    value: blocked
    rate_limit: {unit: second, requests_per_unit: 0}
`)
	over, st := r.one("d", d(e("k", "free")), d(e("k", "blocked")), d(e("k", "other")))
	if !over {
		t.Fatal("requests_per_unit 0 did not block")
	}
	if st[0].Remaining != math.MaxUint32 || st[0].Limit != nil || !st[0].Unlimited || st[0].Code != limiter.OK {
		t.Errorf("unlimited: %+v", st[0])
	}
	if st[1].Code != limiter.OverLimit || st[1].Limit == nil || st[1].Remaining != 0 {
		t.Errorf("blocked: %+v", st[1])
	}
	if st[2].Code != limiter.OK || st[2].Limit != nil || st[2].Remaining != 0 {
		t.Errorf("unmatched: %+v", st[2])
	}
	if over, st := r.one("nope", d(e("k", "blocked"))); over || st[0].Limit != nil {
		t.Errorf("unknown domain: %v %+v", over, st[0])
	}
	if keys := r.store.Stats().Keys; keys != 0 {
		t.Errorf("a denied or unlimited request stored %d keys", keys)
	}
}

func TestReplaces(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 1, name: per-user}
  - key: vip
    rate_limit:
      unit: minute
      requests_per_unit: 100
      name: vip
      replaces: [{name: per-user}]
`)
	// With the vip descriptor the per-user limit is skipped entirely.
	for i := 0; i < 3; i++ {
		over, st := r.one("d", d(e("user", "u")), d(e("vip", "yes")))
		if over || !st[0].Replaced || st[0].Limit != nil || st[1].Limit.Name != "vip" {
			t.Fatalf("request %d: %v %+v %+v", i, over, st[0], st[1])
		}
	}
	// Without it the per-user limit applies and was never counted.
	if over, _ := r.one("d", d(e("user", "u"))); over {
		t.Fatal("replaced limit was counted")
	}
	if over, _ := r.one("d", d(e("user", "u"))); !over {
		t.Fatal("per-user limit does not apply")
	}
}

func TestShadowModes(t *testing.T) {
	rules := `
domain: d
descriptors:
  - key: bot
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 1}
`
	r := newRig(t, rules)
	r.one("d", d(e("bot", "b")))
	over, st := r.one("d", d(e("bot", "b")), d(e("user", "u")))
	if over || st[0].Code != limiter.OK || !st[0].Shadowed || st[0].Limit == nil || st[0].Remaining != 0 {
		t.Fatalf("shadow rule: %v %+v (want OK, shadowed, 0 remaining)", over, st[0])
	}
	// A shadowed denial whose hits exceed the whole limit also reports 0.
	big := d(e("bot", "b"))
	big.HitsSet, big.Hits = true, 5
	if over, st := r.one("d", big); over || st[0].Code != limiter.OK || !st[0].Shadowed || st[0].Remaining != 0 {
		t.Fatalf("shadow rule, hits over the whole limit: %v %+v", over, st[0])
	}
	// The shadowed denial did not veto the other descriptor: it counted.
	if over, _ := r.one("d", d(e("user", "u"))); !over {
		t.Fatal("the other descriptor did not count")
	}

	g := newRig(t, rules, func(o *limiter.Options) { o.ShadowMode = true })
	g.one("d", d(e("user", "u")))
	over, st = g.one("d", d(e("user", "u")))
	if over || st[0].Code != limiter.OverLimit {
		t.Fatalf("global shadow: overall over %v, status %+v (want overall OK, status OVER_LIMIT)", over, st[0])
	}
}

func TestDeniedRequestConsumesNothingElsewhere(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: a
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: b
    rate_limit: {unit: minute, requests_per_unit: 1}
`)
	r.one("d", d(e("b", "x")))
	over, st := r.one("d", d(e("a", "x")), d(e("b", "x")))
	if !over || st[0].Code != limiter.OK || st[0].Remaining != 5 {
		t.Fatalf("%v %+v", over, st[0])
	}
	// a was not consumed by the denied request.
	if _, st := r.one("d", d(e("a", "x"))); st[0].Remaining != 4 {
		t.Fatalf("a consumed by a denied request: %+v", st[0])
	}
}

func TestSeveralLimitsReportTheTightest(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: k
    rate_limits:
      - {rate: "3/s"}
      - {rate: "5/hour", name: hourly}
`)
	_, st := r.one("d", d(e("k", "v")))
	if st[0].Limit.RequestsPerUnit != 3 || st[0].Remaining != 2 {
		t.Fatalf("first: %+v", st[0].Limit)
	}
	for i := 0; i < 2; i++ {
		r.clock.Add(time.Second)
		r.one("d", d(e("k", "v")))
	}
	// 3 of 5 hourly used, 1 of 3 per second: hourly has 2 left, the second 2.
	r.clock.Add(time.Second)
	r.one("d", d(e("k", "v")))
	r.one("d", d(e("k", "v")))
	over, st := r.one("d", d(e("k", "v")))
	if !over || st[0].Limit.Name != "hourly" {
		t.Fatalf("hourly should deny: %v %+v", over, st[0].Limit)
	}
}

func TestAdversarialValuesNeverShareACounter(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: x
    descriptors:
      - key: y
        rate_limit: {unit: hour, requests_per_unit: 1}
`)
	pairs := [][2]string{{"a_y_b", "c"}, {"a", "b_y_c"}, {"a:b", "c"}, {"a", "b:c"}, {"1:a", ""}, {"", "1:a"}, {"a|b", "c"}}
	for _, p := range pairs {
		if over, st := r.one("d", d(e("x", p[0]), e("y", p[1]))); over || st[0].Remaining != 0 {
			t.Fatalf("values %q: over %v %+v: shares a counter with an earlier pair", p, over, st[0])
		}
	}
}

func TestExemptAndOverride(t *testing.T) {
	r := newRig(t, `
domain: d
descriptors:
  - key: remote_address
    exempt: ["10.0.0.0/8", "health-*"]
    rate_limit: {unit: minute, requests_per_unit: 1}
`)
	for i := 0; i < 3; i++ {
		if over, st := r.one("d", d(e("remote_address", "10.2.3.4")), d(e("remote_address", "health-probe"))); over || !st[0].Exempt || !st[1].Exempt || st[0].Limit != nil {
			t.Fatalf("exempt: %v %+v", over, st)
		}
	}
	if r.store.Stats().Keys != 0 {
		t.Fatal("an exempt client touched the store")
	}
	// A request override applies when the domain exists, with or without a rule.
	ov := d(e("anything", "v"))
	ov.Override = &limiter.Override{RequestsPerUnit: 2, Unit: descriptors.UnitMinute, Multiplier: 1}
	for i := 1; i <= 3; i++ {
		over, st := r.one("d", ov)
		if want := i == 3; over != want || st[0].Limit == nil || st[0].Limit.RequestsPerUnit != 2 {
			t.Fatalf("override request %d: %v %+v", i, over, st[0])
		}
	}
	if over, st := r.one("nope", ov); over || st[0].Limit != nil {
		t.Fatalf("override on an unknown domain: %v %+v", over, st[0])
	}
}

func TestSetConfigKeepsCountersOfUnchangedRules(t *testing.T) {
	rules := `
domain: d
descriptors:
  - key: k
    rate_limit: {unit: hour, requests_per_unit: 3}
`
	r := newRig(t, rules)
	r.one("d", d(e("k", "v")))
	cfg, err := descriptors.Parse(map[string][]byte{"rules.yaml": []byte(rules + "  - key: other\n    rate_limit: {unit: hour, requests_per_unit: 1}\n")})
	if err != nil {
		t.Fatal(err)
	}
	r.lim.SetConfig(cfg)
	if _, st := r.one("d", d(e("k", "v"))); st[0].Remaining != 1 {
		t.Fatalf("counter lost on reload: %+v", st[0])
	}
}

func TestStoreErrorIsReturned(t *testing.T) {
	r := newRig(t, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 3}\n")
	r.store.Close()
	out := make([]limiter.Status, 1)
	_, err := r.lim.ShouldRateLimit(context.Background(), &limiter.Request{Domain: "d", Descriptors: []limiter.Descriptor{d(e("k", "v"))}}, out)
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("closed store: %v", err)
	}
}

func BenchmarkShouldRateLimit(b *testing.B) {
	cfg, err := descriptors.Load("../../examples/ratelimit.yaml")
	if err != nil {
		b.Fatal(err)
	}
	store := memory.New(memory.Options{})
	defer store.Close()
	lim, _ := limiter.New(cfg, limiter.Options{Store: store})
	req := &limiter.Request{Domain: "edge", Descriptors: []limiter.Descriptor{
		d(e("remote_address", "192.0.2.1")), d(e("path", "/api/items")), d(e("user_id", "alice")),
	}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]limiter.Status, 3)
		for pb.Next() {
			if _, err := lim.ShouldRateLimit(context.Background(), req, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A flood of distinct client values keeps the store within its bound.
func TestFloodOfDistinctValuesStaysBounded(t *testing.T) {
	cfg, err := descriptors.Parse(map[string][]byte{"r.yaml": []byte("domain: d\ndescriptors:\n  - key: ip\n    rate_limit: {unit: hour, requests_per_unit: 5}\n")})
	if err != nil {
		t.Fatal(err)
	}
	const bound, flood = 4096, 200_000
	store := memory.New(memory.Options{MaxKeys: bound})
	defer store.Close()
	lim, _ := limiter.New(cfg, limiter.Options{Store: store})
	out := make([]limiter.Status, 1)
	req := &limiter.Request{Domain: "d", Descriptors: []limiter.Descriptor{d(e("ip", ""))}}
	for i := 0; i < flood; i++ {
		req.Descriptors[0].Entries[0].Value = strconv.Itoa(i)
		if _, err := lim.ShouldRateLimit(context.Background(), req, out); err != nil {
			t.Fatal(err)
		}
		if out[0].Code != limiter.OK {
			t.Fatalf("value %d denied", i)
		}
	}
	st := store.Stats()
	if st.Keys > bound || st.Evictions < flood-bound {
		t.Fatalf("after %d distinct values: %+v (bound %d)", flood, st, bound)
	}
}
