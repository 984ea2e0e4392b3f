package descriptors

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func TestLoadDirectory(t *testing.T) {
	dir := filepath.Join("testdata", "twodomains")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{filepath.Join(dir, "edge.yaml"), filepath.Join(dir, "messaging.yml")}
	if !reflect.DeepEqual(c.Files(), wantFiles) {
		t.Errorf("Files() = %q, want %q", c.Files(), wantFiles)
	}
	var names []string
	for _, d := range c.Domains() {
		names = append(names, d.Name)
	}
	if !reflect.DeepEqual(names, []string{"edge", "messaging"}) {
		t.Errorf("Domains() = %q", names)
	}
	if c.Rules() != 4 {
		t.Errorf("Rules() = %d, want 4", c.Rules())
	}

	// rate_limits with strategies, burst and a multi-day window.
	r, _ := c.Domain("edge").Match(kv("remote_address", "1.2.3.4", "path", "/api/x"))
	if r == nil || len(r.Limits) != 2 {
		t.Fatalf("edge path rule: %+v", r)
	}
	burst, daily := r.Limits[0], r.Limits[1]
	if burst.Name != "api_burst" || burst.Strategy.Name() != "token_bucket" || burst.Limit.Burst != 20 ||
		burst.Limit.Requests != 10 || burst.Limit.Period != strategies.Second || burst.Index != 0 || burst.Rule != r {
		t.Errorf("api_burst = %+v", burst)
	}
	if daily.Strategy.Name() != "gcra" || daily.Unit != UnitDay || daily.UnitMultiplier != 30 || daily.RequestsPerUnit != 1000 ||
		daily.Limit.Period != 30*strategies.Day || daily.Index != 1 {
		t.Errorf("api_daily = %+v", daily)
	}

	m, _ := c.Domain("messaging").Match(kv("to_number", "123"))
	wantMeta := map[string]any{"owner": "sms-team", "tier": 2, "tags": []any{"a", "b"}}
	if m == nil || !reflect.DeepEqual(m.Metadata, wantMeta) {
		t.Errorf("metadata = %#v, want %#v", m.Metadata, wantMeta)
	}
	if m.Limits[0].Strategy.Name() != "sliding_window_counter" || m.Limits[0].Unit != UnitDay {
		t.Errorf("to_number limit = %+v", m.Limits[0])
	}
	u, _ := c.Domain("messaging").Match(kv("message_type", "internal"))
	if u == nil || !u.Limits[0].Unlimited || u.Limits[0].Strategy != nil {
		t.Errorf("unlimited rule = %+v", u)
	}

	wantDump := []string{
		"edge.remote_address: unit=MINUTE requests_per_unit=100, shadow_mode: false, strategy: fixed_window",
		"edge.remote_address.path_/api/*: unit=SECOND requests_per_unit=10, shadow_mode: false, strategy: token_bucket, name: api_burst",
		"edge.remote_address.path_/api/*: unit=DAY unit_multiplier=30 requests_per_unit=1000, shadow_mode: false, strategy: gcra, name: api_daily",
		"messaging.to_number: unit=DAY requests_per_unit=100, shadow_mode: false, strategy: sliding_window_counter",
		"messaging.message_type_internal: unlimited, shadow_mode: false",
	}
	if got := c.Dump(); !reflect.DeepEqual(got, wantDump) {
		t.Errorf("Dump() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantDump, "\n"))
	}
}

func TestLoadFile(t *testing.T) {
	name := filepath.Join("testdata", "twodomains", "edge.yaml")
	c, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Domains()) != 1 || c.Domain("edge") == nil || c.Domain("edge").File != name {
		t.Errorf("Load(%s): %v", name, c.Domains())
	}
	if _, err := Load(filepath.Join("testdata", "missing")); err == nil || !strings.HasPrefix(err.Error(), "descriptors: load: ") {
		t.Errorf("Load of a missing path: %v", err)
	}
}

// TestLoadConfigMap loads a directory laid out as Kubernetes mounts a
// ConfigMap: a timestamped directory holding the files, a "..data" link
// to it, and visible links "name -> ..data/name".
func TestLoadConfigMap(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2024_05_01_12_00_00.123456789")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"edge.yaml":  "domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: {rate: 5/s}\n",
		"other.yaml": "domain: other\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "edge.yaml"), filepath.Join(dir, "other.yaml")}
	if !reflect.DeepEqual(c.Files(), want) {
		t.Errorf("Files() = %q, want %q (hidden entries must be skipped)", c.Files(), want)
	}
	if c.Domain("edge") == nil || c.Domain("other") == nil || len(c.Domains()) != 2 {
		t.Errorf("domains: %v", c.Domains())
	}

	// A dangling visible link is an I/O error, not a silent skip.
	if err := os.Symlink(filepath.Join("..data", "gone.yaml"), filepath.Join(dir, "gone.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "gone.yaml") {
		t.Errorf("dangling link: %v", err)
	}
}

func TestLoadEmptyDirectory(t *testing.T) {
	c, err := Load(t.TempDir())
	if err != nil || len(c.Domains()) != 0 || c.Rules() != 0 || len(c.Dump()) != 0 {
		t.Errorf("empty dir: %v, %v", c, err)
	}
}

func TestExtensions(t *testing.T) {
	c := mustParse(t, map[string]string{"x.yaml": `
domain: x
descriptors:
  - key: ms
    rate_limit: {rate: 10/500ms}
  - key: multi
    rate_limit: {rate: "10 per 5 minutes"}
  - key: debt
    rate_limit: {rate: 10/s, strategy: token_bucket_with_debt, burst: 15, max_debt: 5}
  - key: zero
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: anchors
    rate_limit: &lim {unit: MINUTE, requests_per_unit: 3}
  - key: anchors2
    rate_limit: *lim
  - key: flags
    value: "*"
    share_threshold: true
    quota_mode: true
    value_to_metric: true
    detailed_metric: true
    shadow_mode: true
    rate_limit: {unit: year, requests_per_unit: 7}
`})
	d := c.Domain("x")
	get := func(key string) *RateLimit {
		r, _ := d.Match(kv(key, "v"))
		if r == nil || len(r.Limits) != 1 {
			t.Fatalf("rule %s: %+v", key, r)
		}
		return r.Limits[0]
	}
	if l := get("ms"); l.Unit != UnitSecond || l.UnitMultiplier != 1 || l.RequestsPerUnit != 20 || l.Limit.Period != 500*strategies.Millisecond || l.Limit.Requests != 10 {
		t.Errorf("10/500ms = %+v", l)
	}
	if l := get("multi"); l.Unit != UnitMinute || l.UnitMultiplier != 5 || l.RequestsPerUnit != 10 {
		t.Errorf("10 per 5 minutes = %+v", l)
	}
	if l := get("debt"); l.Limit.Burst != 15 || l.Limit.MaxDebt != 5 {
		t.Errorf("debt = %+v", l.Limit)
	}
	if l := get("zero"); l.RequestsPerUnit != 0 || l.Limit.Requests != 0 {
		t.Errorf("zero = %+v", l)
	}
	if a, b := get("anchors"), get("anchors2"); a.Unit != UnitMinute || b.Unit != UnitMinute || b.RequestsPerUnit != 3 {
		t.Errorf("anchors: %+v %+v", a, b)
	}
	if l := get("flags"); l.Unit != UnitYear || l.Limit.Period != 365*strategies.Day {
		t.Errorf("year = %+v", l)
	}
	r, _ := d.Match(kv("flags", "v"))
	if !r.ShareThreshold || !r.QuotaMode || !r.ValueToMetric || !r.DetailedMetric || !r.ShadowMode || !r.Wildcard() {
		t.Errorf("flags = %+v", r)
	}
}

// TestUnitMatchesEnvoy proves the server may convert a Unit with a cast.
func TestUnitMatchesEnvoy(t *testing.T) {
	for _, name := range []string{"second", "minute", "hour", "day", "week", "month", "year"} {
		u, _ := ParseUnit(name)
		if got := rlsv3.RateLimitResponse_RateLimit_Unit(u).String(); got != u.String() {
			t.Errorf("envoy unit %d is %s, ours is %s", u, got, u)
		}
	}
}
