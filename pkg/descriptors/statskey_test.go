package descriptors_test

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// statsKeyGroup is one config of testdata/statskey/cases.yaml and the
// requests the reference's test/config/config_test.go makes against it.
type statsKeyGroup struct {
	Name   string `yaml:"name"`
	Config string `yaml:"config"`
	Cases  []struct {
		Entries   []string `yaml:"entries"` // "key=value"
		Key       string   `yaml:"key"`
		RPU       uint32   `yaml:"rpu"`
		NoMatch   bool     `yaml:"nomatch"`
		Unlimited bool     `yaml:"unlimited"`
		Shadow    bool     `yaml:"shadow"`
	} `yaml:"cases"`
}

func parseEntries(t *testing.T, es []string) []descriptors.Entry {
	t.Helper()
	out := make([]descriptors.Entry, len(es))
	for i, s := range es {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("entry %q: want key=value", s)
		}
		out[i] = descriptors.Entry{Key: k, Value: v}
	}
	return out
}

// TestStatsKeyReferenceCases replays every stats-key expectation of the
// reference's config tests: the rule found, its limit and its stats key.
func TestStatsKeyReferenceCases(t *testing.T) {
	data, err := os.ReadFile("testdata/statskey/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var groups []statsKeyGroup
	if err := yaml.Unmarshal(data, &groups); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range groups {
		cfg, err := descriptors.Parse(map[string][]byte{"config.yaml": []byte(g.Config)})
		if err != nil {
			t.Fatalf("%s: %v", g.Name, err)
		}
		var dom *descriptors.Domain
		for _, d := range cfg.Domains() {
			dom = d
		}
		for _, c := range g.Cases {
			n++
			entries := parseEntries(t, c.Entries)
			r, _ := dom.Match(entries)
			if c.NoMatch {
				if r != nil && len(r.Limits) > 0 {
					t.Errorf("%s: %v: matched %s, want no limit", g.Name, c.Entries, r.Path)
				}
				continue
			}
			if r == nil || len(r.Limits) == 0 {
				t.Errorf("%s: %v: no limit, want %s", g.Name, c.Entries, c.Key)
				continue
			}
			l := r.Limits[0]
			if l.Unlimited != c.Unlimited || !c.Unlimited && l.RequestsPerUnit != c.RPU || r.ShadowMode != c.Shadow {
				t.Errorf("%s: %v: limit %+v shadow %v, want rpu %d unlimited %v shadow %v", g.Name, c.Entries, l, r.ShadowMode, c.RPU, c.Unlimited, c.Shadow)
			}
			got := string(descriptors.AppendStatsKey(nil, dom.Name, r, entries))
			if got != c.Key {
				t.Errorf("%s: %v: stats key %q, want %q", g.Name, c.Entries, got, c.Key)
			}
			if !r.StatsKeyDynamic() && got != r.Path {
				t.Errorf("%s: %v: static stats key %q differs from the rule's path %q", g.Name, c.Entries, got, r.Path)
			}
		}
	}
	if n < 90 {
		t.Fatalf("only %d cases read", n)
	}
	t.Logf("%d reference stats-key cases", n)
}

func TestOverrideStatsKey(t *testing.T) {
	// TestConfigLimitOverride: every entry's key and value, whatever the override.
	for _, c := range []struct {
		entries []string
		want    string
	}{
		{[]string{"key1=value1", "subkey1=something"}, "test-domain.key1_value1.subkey1_something"},
		{[]string{"key1=value1", "subkey1=something_else"}, "test-domain.key1_value1.subkey1_something_else"},
		{[]string{"key1=", "subkey1=x"}, "test-domain.key1.subkey1_x"},
	} {
		if got := string(descriptors.AppendOverrideStatsKey(nil, "test-domain", parseEntries(t, c.entries))); got != c.want {
			t.Errorf("%v: %q, want %q", c.entries, got, c.want)
		}
	}
}

func TestStatsKeyDoesNotAllocate(t *testing.T) {
	cfg, err := descriptors.Parse(map[string][]byte{"c.yaml": []byte(`
domain: d
descriptors:
  - key: route
    value_to_metric: true
    descriptors:
      - key: user
        detailed_metric: true
        rate_limit: {unit: minute, requests_per_unit: 1}
`)})
	if err != nil {
		t.Fatal(err)
	}
	entries := []descriptors.Entry{{Key: "route", Value: "r"}, {Key: "user", Value: "u"}}
	r, _ := cfg.Domain("d").Match(entries)
	buf := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(100, func() { buf = descriptors.AppendStatsKey(buf[:0], "d", r, entries) }); a != 0 {
		t.Errorf("%v allocations", a)
	}
	if string(buf) != "d.route_r.user_u" {
		t.Errorf("key %q", buf)
	}
}
