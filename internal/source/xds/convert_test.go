package xds_test

import (
	"strings"
	"testing"

	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/envoy-rls/envoy-rls/internal/source/xds"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

func pack(t *testing.T, cfgs ...*rlconfv3.RateLimitConfig) []*anypb.Any {
	t.Helper()
	var out []*anypb.Any
	for _, c := range cfgs {
		a, err := anypb.New(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// TestBuildCarriesEveryField converts a RateLimitConfig that sets every
// field of the proto and checks that each one reaches the rule tree.
func TestBuildCarriesEveryField(t *testing.T) {
	// The fields this test sets: a new proto field fails here until it is
	// carried and added below.
	want := map[string][]string{
		"RateLimitConfig":     {"name", "domain", "descriptors"},
		"RateLimitDescriptor": {"key", "value", "rate_limit", "descriptors", "shadow_mode", "detailed_metric", "quota_mode", "metadata"},
		"RateLimitPolicy":     {"unit", "requests_per_unit", "unlimited", "name", "replaces"},
		"RateLimitReplace":    {"name"},
	}
	msgs := rlconfv3.File_api_ratelimit_config_ratelimit_v3_rls_conf_proto.Messages()
	for i := 0; i < msgs.Len(); i++ {
		m := msgs.Get(i)
		var names []string
		for j := 0; j < m.Fields().Len(); j++ {
			names = append(names, string(m.Fields().Get(j).Name()))
		}
		if strings.Join(names, ",") != strings.Join(want[string(m.Name())], ",") {
			t.Errorf("%s has fields %v; this test covers %v", m.Name(), names, want[string(m.Name())])
		}
	}

	md, _ := structpb.NewStruct(map[string]any{"owner": "team-a", "n": 2})
	cfg, err := xds.Build(pack(t, &rlconfv3.RateLimitConfig{Name: "edge-resource", Domain: "edge", Descriptors: []*rlconfv3.RateLimitDescriptor{
		{Key: "remote_address", RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit_WEEK, RequestsPerUnit: 70, Name: "per_ip"},
			ShadowMode: true, DetailedMetric: true, QuotaMode: true, Metadata: md,
			Descriptors: []*rlconfv3.RateLimitDescriptor{{Key: "path", Value: "/api",
				RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit_YEAR, RequestsPerUnit: 3,
					Replaces: []*rlconfv3.RateLimitReplace{{Name: "per_ip"}}}}}},
		{Key: "month", RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit_MONTH, RequestsPerUnit: 1}},
		{Key: "free", RateLimit: &rlconfv3.RateLimitPolicy{Unlimited: true}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Domain("edge")
	if d == nil {
		t.Fatalf("no domain edge: %v", cfg.Domains())
	}
	ip, _ := d.Match([]descriptors.Entry{{Key: "remote_address", Value: "1.2.3.4"}})
	if ip == nil || !ip.ShadowMode || !ip.DetailedMetric || !ip.QuotaMode || ip.Metadata["owner"] != "team-a" || ip.Metadata["n"] != 2.0 {
		t.Fatalf("remote_address rule: %+v", ip)
	}
	if l := ip.Limits[0]; l.Unit != descriptors.UnitWeek || l.RequestsPerUnit != 70 || l.Name != "per_ip" {
		t.Errorf("remote_address limit: %+v", l)
	}
	path, _ := d.Match([]descriptors.Entry{{Key: "remote_address", Value: "1.2.3.4"}, {Key: "path", Value: "/api"}})
	if path == nil || path.Limits[0].Unit != descriptors.UnitYear || strings.Join(path.Limits[0].Replaces, ",") != "per_ip" {
		t.Fatalf("path rule: %+v", path)
	}
	month, _ := d.Match([]descriptors.Entry{{Key: "month", Value: "x"}})
	if month == nil || month.Limits[0].Unit != descriptors.UnitMonth {
		t.Errorf("month rule: %+v", month)
	}
	free, _ := d.Match([]descriptors.Entry{{Key: "free", Value: "x"}})
	if free == nil || !free.Limits[0].Unlimited {
		t.Errorf("unlimited rule: %+v", free)
	}
}

// TestBuildRefusesWhole reports every problem of every resource, naming
// the domain and the descriptor path, and no rules at all.
func TestBuildRefusesWhole(t *testing.T) {
	good := &rlconfv3.RateLimitConfig{Domain: "good", Descriptors: []*rlconfv3.RateLimitDescriptor{
		{Key: "k", RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit_SECOND, RequestsPerUnit: 1}}}}
	res := pack(t, good, &rlconfv3.RateLimitConfig{Domain: "bad", Descriptors: []*rlconfv3.RateLimitDescriptor{
		{Key: "a", RateLimit: &rlconfv3.RateLimitPolicy{Unlimited: true, Unit: rlconfv3.RateLimitUnit_SECOND}},
		{Key: "b", RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit(42), RequestsPerUnit: 1}},
		{Key: "c", RateLimit: &rlconfv3.RateLimitPolicy{Unit: rlconfv3.RateLimitUnit_SECOND, Name: "me", Replaces: []*rlconfv3.RateLimitReplace{{Name: "me"}, {}}}},
	}}, good)
	res = append(res, &anypb.Any{TypeUrl: "type.googleapis.com/other.Type"}, &anypb.Any{TypeUrl: xds.TypeURL, Value: []byte{0xff}})
	cfg, err := xds.Build(res)
	if cfg != nil || err == nil {
		t.Fatalf("Build = %v, %v; want an error and no config", cfg, err)
	}
	for _, want := range []string{
		`domain "bad", descriptors[0] (key "a"): rate_limit: unlimited: true must not be combined with unit`,
		`domain "bad", descriptors[1] (key "b"): rate_limit: invalid rate limit unit "42"`,
		`domain "bad", descriptors[2] (key "c"): rate_limit: replaces names "me", a limit of the same descriptor`,
		`domain "bad", descriptors[2] (key "c"): rate_limit: replaces[1]: name must not be empty`,
		`domain "good": domain "good" is defined twice`,
		`xds: resource 3: type "type.googleapis.com/other.Type"`,
		`xds: resource 4: `,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), ".yaml") || strings.Contains(err.Error(), ":0:") {
		t.Errorf("error names a file or line: %v", err)
	}
}
