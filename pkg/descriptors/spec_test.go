package descriptors

import (
	"errors"
	"strings"
	"testing"
)

func u32(v uint32) *uint32 { return &v }

// TestBuildMatchesParse builds the same rules from YAML and from a
// DomainSpec without positions: the trees agree, including every UID,
// so a rule keeps its counters whichever source states it.
func TestBuildMatchesParse(t *testing.T) {
	fromYAML, err := Parse(map[string][]byte{"edge.yaml": []byte(`
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 10, name: per_ip}
    descriptors:
      - key: path
        value: /api/*
        share_threshold: true
        shadow_mode: true
        rate_limit: {unit: second, requests_per_unit: 5, replaces: [{name: per_ip}]}
  - key: user
    detailed_metric: true
    quota_mode: true
    metadata: {team: a}
    rate_limit: {unlimited: true}
`)})
	if err != nil {
		t.Fatal(err)
	}
	fromSpec, err := Build([]DomainSpec{{Name: "edge", Descriptors: []DescriptorSpec{
		{Key: "remote_address", RateLimit: &RateLimitSpec{Unit: "MINUTE", RequestsPerUnit: u32(10), Name: "per_ip"},
			Descriptors: []DescriptorSpec{{Key: "path", Value: "/api/*", ShareThreshold: true, ShadowMode: true,
				RateLimit: &RateLimitSpec{Unit: "SECOND", RequestsPerUnit: u32(5), Replaces: []string{"per_ip"}}}}},
		{Key: "user", DetailedMetric: true, QuotaMode: true, Metadata: map[string]any{"team": "a"},
			RateLimit: &RateLimitSpec{Unlimited: true}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(fromSpec.Dump(), "\n"), strings.Join(fromYAML.Dump(), "\n"); got != want {
		t.Errorf("dump from spec\n%s\nwant\n%s", got, want)
	}
	a, b := fromYAML.Domain("edge").Rules(), fromSpec.Domain("edge").Rules()
	if len(a) != len(b) {
		t.Fatalf("%d rules from YAML, %d from spec", len(a), len(b))
	}
	for i := range a {
		ra, rb := a[i], b[i]
		if ra.Path != rb.Path || ra.ShadowMode != rb.ShadowMode || ra.DetailedMetric != rb.DetailedMetric ||
			ra.ShareThreshold != rb.ShareThreshold || ra.QuotaMode != rb.QuotaMode || len(ra.Metadata) != len(rb.Metadata) {
			t.Errorf("rule %d differs: %+v vs %+v", i, ra, rb)
		}
		for j := range ra.Limits {
			la, lb := ra.Limits[j], rb.Limits[j]
			if la.UID != lb.UID || la.Name != lb.Name || strings.Join(la.Replaces, ",") != strings.Join(lb.Replaces, ",") ||
				la.Unlimited != lb.Unlimited || la.Limit != lb.Limit {
				t.Errorf("limit %s differs: %+v vs %+v", ra.Path, la, lb)
			}
		}
	}
	if fromSpec.Domain("edge").File != "" || len(fromSpec.Files()) != 0 {
		t.Errorf("a spec without positions reports files %q", fromSpec.Files())
	}
}

// TestBuildErrorsWithoutPositions checks that the problems of a spec
// without positions name the domain and the descriptor path, with no
// file or line, and that every problem of every domain is reported.
func TestBuildErrorsWithoutPositions(t *testing.T) {
	_, err := Build([]DomainSpec{
		{Name: "a", Descriptors: []DescriptorSpec{
			{Key: "k", RateLimit: &RateLimitSpec{Unit: "UNKNOWN", RequestsPerUnit: u32(1)}},
			{Key: "n", Descriptors: []DescriptorSpec{{Key: ""}}},
			{Key: "k"},
			{Key: "u", RateLimit: &RateLimitSpec{Unlimited: true, Unit: "SECOND", Replaces: []string{""}}},
		}},
		{Name: "", Descriptors: []DescriptorSpec{{Key: "x"}}},
		{Name: "a"},
	})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
	}
	want := []string{
		`domain "a", descriptors[0] (key "k"): rate_limit: invalid rate limit unit "UNKNOWN" (valid units: second, minute, hour, day, week, month, year)`,
		`domain "a", descriptors[1].descriptors[0] (key ""): descriptor key must not be empty`,
		`domain "a", descriptors[2] (key "k"): duplicate descriptor composite key "a.k"`,
		`domain "a", descriptors[3] (key "u"): rate_limit: replaces[0]: name must not be empty`,
		`domain "a", descriptors[3] (key "u"): rate_limit: unlimited: true must not be combined with unit`,
		`domain must not be empty`,
		`domain "a": domain "a" is defined twice`,
	}
	got := problems(err)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
