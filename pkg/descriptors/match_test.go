package descriptors

import (
	"testing"
)

const edgeYAML = `
domain: edge
descriptors:
  - key: remote_address
    exempt: ["10.0.0.0/8", "::1/128", "health-*", internal]
    rate_limit: {rate: 100/min}
    descriptors:
      - key: path
        value: /api/*
        rate_limit: {rate: 10/s}
      - key: path
        value: /api/v1/users
        rate_limit: {unit: second, requests_per_unit: 5}
      - key: path
        value: /api/v*/items
        rate_limit: {unit: second, requests_per_unit: 7}
      - key: path
        rate_limit: {unit: minute, requests_per_unit: 1}
  - key: remote_address
    value: 50.0.0.5
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: user
    value: "*-admin-*"
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: user
    value: "a*b*c"
    exempt: ["abc"]
    rate_limit: {unit: hour, requests_per_unit: 4}
  - key: deep
    descriptors:
      - key: deeper
        value: "*"
        share_threshold: true
        rate_limit: {unit: day, requests_per_unit: 6}
`

func mustParse(t testing.TB, files map[string]string) *Config {
	t.Helper()
	in := make(map[string][]byte, len(files))
	for k, v := range files {
		in[k] = []byte(v)
	}
	c, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// kv builds entries from alternating keys and values.
func kv(s ...string) []Entry {
	out := make([]Entry, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		out = append(out, Entry{s[i], s[i+1]})
	}
	return out
}

func TestMatch(t *testing.T) {
	c := mustParse(t, map[string]string{"edge.yaml": edgeYAML})
	d := c.Domain("edge")
	tests := []struct {
		name    string
		entries []Entry
		path    string // "" for no rule
		exempt  bool
	}{
		{"key only", kv("remote_address", "1.2.3.4"), "edge.remote_address", false},
		{"exact beats key only", kv("remote_address", "50.0.0.5"), "edge.remote_address_50.0.0.5", false},
		{"exempt cidr v4", kv("remote_address", "10.1.2.3"), "edge.remote_address", true},
		{"exempt cidr v6", kv("remote_address", "::1"), "edge.remote_address", true},
		{"not exempt v6", kv("remote_address", "::2"), "edge.remote_address", false},
		{"exempt v4-mapped v6", kv("remote_address", "::ffff:10.0.0.1"), "edge.remote_address", true},
		{"not exempt outside cidr", kv("remote_address", "11.0.0.1"), "edge.remote_address", false},
		{"exempt pattern", kv("remote_address", "health-check"), "edge.remote_address", true},
		{"exempt exact", kv("remote_address", "internal"), "edge.remote_address", true},
		{"exempt exact is exact", kv("remote_address", "internal2"), "edge.remote_address", false},
		{"exact beats wildcard", kv("remote_address", "1.2.3.4", "path", "/api/v1/users"), "edge.remote_address.path_/api/v1/users", false},
		{"first wildcard in file order", kv("remote_address", "1.2.3.4", "path", "/api/v2/items"), "edge.remote_address.path_/api/*", false},
		{"wildcard beats key only", kv("remote_address", "1.2.3.4", "path", "/api/"), "edge.remote_address.path_/api/*", false},
		{"key only at depth 2", kv("remote_address", "1.2.3.4", "path", "/other"), "edge.remote_address.path", false},
		{"exempt from parent level", kv("remote_address", "10.0.0.1", "path", "/other"), "edge.remote_address.path", true},
		{"exact rule has no children", kv("remote_address", "50.0.0.5", "path", "/api/x"), "", false},
		{"deeper than config", kv("remote_address", "1.2.3.4", "path", "/x", "extra", "1"), "", false},
		{"wildcard in the middle", kv("user", "x-admin-y"), "edge.user_*-admin-*", false},
		{"wildcard at start and end", kv("user", "-admin-"), "edge.user_*-admin-*", false},
		{"several stars", kv("user", "aXbYc"), "edge.user_a*b*c", false},
		{"several stars, empty runs", kv("user", "abc"), "edge.user_a*b*c", true},
		{"several stars, no match", kv("user", "acb"), "", false},
		{"unknown key", kv("nope", "x"), "", false},
		{"shallower rule without limit", kv("deep", "x"), "edge.deep", false},
		{"deeper rule", kv("deep", "x", "deeper", "y"), "edge.deep.deeper_*", false},
		{"no entries", nil, "", false},
		{"wrong key at depth 2", kv("remote_address", "1.2.3.4", "user", "x"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, exempt := d.Match(tt.entries)
			path := ""
			if r != nil {
				path = r.Path
			}
			if path != tt.path || exempt != tt.exempt {
				t.Errorf("Match(%v) = %q, exempt %v; want %q, exempt %v", tt.entries, path, exempt, tt.path, tt.exempt)
			}
			if r != nil && r.Depth != len(tt.entries)-1 {
				t.Errorf("rule depth %d for %d entries", r.Depth, len(tt.entries))
			}
		})
	}

	// The shallower rule is returned without limits: its parent's limit
	// does not apply.
	if r, _ := d.Match(kv("deep", "x")); r == nil || len(r.Limits) != 0 {
		t.Errorf("deep rule: %+v", r)
	}
	if r, _ := d.Match(kv("remote_address", "50.0.0.5")); r == nil || r.Limits[0].RequestsPerUnit != 0 || r.Limits[0].Limit.Requests != 0 {
		t.Errorf("requests_per_unit 0 must be kept: %+v", r)
	}
	if r, _ := d.Match(kv("deep", "x", "deeper", "y")); r == nil || !r.ShareThreshold || r.Parent == nil || r.Parent.Key != "deep" {
		t.Errorf("deeper rule: %+v", r)
	}
	// Unknown domain.
	if c.Domain("nope") != nil {
		t.Fatal("unknown domain found")
	}
	if r, ex := c.Domain("nope").Match(kv("remote_address", "1.2.3.4")); r != nil || ex {
		t.Error("nil domain matched")
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"a*", "a", true},
		{"a*", "ab", true},
		{"a*", "ba", false},
		{"*a", "ba", true},
		{"*a", "ab", false},
		{"a*b", "axxb", true},
		{"a*b", "axxbx", false},
		{"a*b*c", "abbbc", true},
		{"a*b*c", "acbc", true},
		{"a*b*c", "acb", false},
		{"**", "x", true},
		{"*x*", "abc", false},
		{"*x*", "axc", true},
		{"exact", "exact", true},
		{"exact", "exac", false},
		{"/api/*/items", "/api/v1/items", true},
		{"/api/*/items", "/api/v1/item", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

// TestReferenceExamples checks the examples of envoyproxy/ratelimit's
// README against Match.
func TestReferenceExamples(t *testing.T) {
	c := mustParse(t, map[string]string{
		"example1.yaml": `
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit: {unit: second, requests_per_unit: 500}
  - key: database
    value: default
    rate_limit: {unit: second, requests_per_unit: 500}
`,
		"example2.yaml": `
domain: messaging
descriptors:
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit: {unit: day, requests_per_unit: 5}
  - key: to_number
    rate_limit: {unit: day, requests_per_unit: 100}
`,
		"example3.yaml": `
domain: edge_proxy_per_ip
descriptors:
  - key: remote_address
    rate_limit: {unit: second, requests_per_unit: 10}
  - key: remote_address
    value: 50.0.0.5
    rate_limit: {unit: second, requests_per_unit: 0}
`,
		"example4.yaml": `
domain: example4
descriptors:
  - key: key
    value: value
    rate_limit: {requests_per_unit: 300, unit: second}
`,
		"example4b.yaml": `
domain: example4b
descriptors:
  - key: key
    value: value
    descriptors:
      - key: subkey
        rate_limit: {requests_per_unit: 300, unit: second}
`,
		"example5.yaml": `
domain: internal
descriptors:
  - key: ldap
    rate_limit:
      unlimited: true
  - key: azure
    rate_limit: {unit: minute, requests_per_unit: 100}
`,
		"example6.yaml": `
domain: example6
descriptors:
  - key: service
    descriptors:
      - key: user
        value: user-a
        rate_limit: {requests_per_unit: 10, unit: second}
        shadow_mode: true
      - key: user
        value: user-b
        rate_limit: {requests_per_unit: 20, unit: second}
`,
		"example7.yaml": `
domain: example7
descriptors:
  - key: key_1
    value: value_1
    descriptors:
      - key: user
        value: bkthomps
        rate_limit: {name: specific_limit, requests_per_unit: 5, unit: second}
  - key: key_2
    value: value_2
    descriptors:
      - key: user
        value: bkthomps
        rate_limit:
          replaces:
            - name: specific_limit
          requests_per_unit: 10
          unit: second
`,
		"example8.yaml": `
domain: example8
descriptors:
  - key: key1
    detailed_metric: true
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: key1
    value: value1
    rate_limit: {unit: minute, requests_per_unit: 20}
`,
		"example9.yaml": `
domain: example9
descriptors:
  - key: key1
    value: value*
    rate_limit: {unit: minute, requests_per_unit: 20}
`,
	})
	type want struct {
		rpu       uint32
		unit      Unit
		unlimited bool
		shadow    bool
		detailed  bool
		name      string
		replaces  string
	}
	tests := []struct {
		domain  string
		entries []Entry
		want    *want
	}{
		{"mongo_cps", kv("database", "users"), &want{rpu: 500, unit: UnitSecond}},
		{"mongo_cps", kv("database", "default"), &want{rpu: 500, unit: UnitSecond}},
		{"mongo_cps", kv("database", "other"), nil},
		{"messaging", kv("message_type", "marketing", "to_number", "2061111111"), &want{rpu: 5, unit: UnitDay}},
		{"messaging", kv("to_number", "2061111111"), &want{rpu: 100, unit: UnitDay}},
		{"messaging", kv("message_type", "marketing"), &want{}},
		{"messaging", kv("message_type", "transactional", "to_number", "2061111111"), nil},
		{"edge_proxy_per_ip", kv("remote_address", "50.0.0.1"), &want{rpu: 10, unit: UnitSecond}},
		{"edge_proxy_per_ip", kv("remote_address", "50.0.0.5"), &want{rpu: 0, unit: UnitSecond}},
		{"example4", kv("key", "value", "subkey", "subvalue"), nil},
		{"example4b", kv("key", "value", "subkey", "subvalue"), &want{rpu: 300, unit: UnitSecond}},
		{"internal", kv("ldap", "x"), &want{unlimited: true}},
		{"internal", kv("azure", "x"), &want{rpu: 100, unit: UnitMinute}},
		{"example6", kv("service", "auth-service", "user", "user-a"), &want{rpu: 10, unit: UnitSecond, shadow: true}},
		{"example6", kv("service", "auth-service", "user", "user-b"), &want{rpu: 20, unit: UnitSecond}},
		{"example7", kv("key_1", "value_1", "user", "bkthomps"), &want{rpu: 5, unit: UnitSecond, name: "specific_limit"}},
		{"example7", kv("key_2", "value_2", "user", "bkthomps"), &want{rpu: 10, unit: UnitSecond, replaces: "specific_limit"}},
		{"example8", kv("key1", "unspecified_value"), &want{rpu: 10, unit: UnitMinute, detailed: true}},
		{"example8", kv("key1", "value1"), &want{rpu: 20, unit: UnitMinute}},
		{"example9", kv("key1", "value_1"), &want{rpu: 20, unit: UnitMinute}},
		{"example9", kv("key1", "value_2"), &want{rpu: 20, unit: UnitMinute}},
		{"example9", kv("key1", "other"), nil},
	}
	for _, tt := range tests {
		r, _ := c.Domain(tt.domain).Match(tt.entries)
		if tt.want == nil {
			if r != nil {
				t.Errorf("%s %v: matched %s, want no rule", tt.domain, tt.entries, r.Path)
			}
			continue
		}
		if r == nil {
			t.Errorf("%s %v: no rule", tt.domain, tt.entries)
			continue
		}
		if r.ShadowMode != tt.want.shadow || r.DetailedMetric != tt.want.detailed {
			t.Errorf("%s %v: shadow %v detailed %v", tt.domain, tt.entries, r.ShadowMode, r.DetailedMetric)
		}
		if tt.want.unit == UnitUnknown && !tt.want.unlimited {
			if len(r.Limits) != 0 {
				t.Errorf("%s %v: %d limits, want none", tt.domain, tt.entries, len(r.Limits))
			}
			continue
		}
		if len(r.Limits) != 1 {
			t.Errorf("%s %v: %d limits, want 1", tt.domain, tt.entries, len(r.Limits))
			continue
		}
		l := r.Limits[0]
		if l.Unlimited != tt.want.unlimited || l.Name != tt.want.name {
			t.Errorf("%s %v: unlimited %v name %q", tt.domain, tt.entries, l.Unlimited, l.Name)
		}
		if l.Unlimited {
			if l.Strategy != nil {
				t.Errorf("%s %v: unlimited limit has a strategy", tt.domain, tt.entries)
			}
			continue
		}
		if l.RequestsPerUnit != tt.want.rpu || l.Unit != tt.want.unit || l.UnitMultiplier != 1 {
			t.Errorf("%s %v: %d per %v ×%d, want %d per %v", tt.domain, tt.entries, l.RequestsPerUnit, l.Unit, l.UnitMultiplier, tt.want.rpu, tt.want.unit)
		}
		if l.Strategy == nil || l.Strategy.Name() != "fixed_window" || l.Limit.Requests != int64(tt.want.rpu) || l.Limit.Period != l.Unit.Micros() {
			t.Errorf("%s %v: strategy %v limit %+v", tt.domain, tt.entries, l.Strategy, l.Limit)
		}
		if rep := ""; len(l.Replaces) > 0 {
			rep = l.Replaces[0]
			if rep != tt.want.replaces {
				t.Errorf("%s %v: replaces %q", tt.domain, tt.entries, rep)
			}
		} else if tt.want.replaces != "" {
			t.Errorf("%s %v: no replaces", tt.domain, tt.entries)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	d := mustParse(t, map[string]string{"edge.yaml": edgeYAML}).Domain("edge")
	for _, e := range [][]Entry{
		kv("remote_address", "10.1.2.3", "path", "/api/v2/items"),
		kv("remote_address", "2001:db8::1", "path", "/other"),
		kv("user", "aXbYc"),
	} {
		if n := testing.AllocsPerRun(100, func() { d.Match(e) }); n != 0 {
			t.Errorf("Match(%v) allocates %v times", e, n)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	d := mustParse(b, map[string]string{"edge.yaml": edgeYAML}).Domain("edge")
	for _, bc := range []struct {
		name    string
		entries []Entry
	}{
		{"exact", kv("remote_address", "50.0.0.5")},
		{"keyonly_cidr_exempt", kv("remote_address", "10.1.2.3")},
		{"depth2_wildcard", kv("remote_address", "1.2.3.4", "path", "/api/v2/items")},
		{"depth2_keyonly", kv("remote_address", "2001:db8::1", "path", "/other")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.Match(bc.entries)
			}
		})
		b.Run(bc.name+"_parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d.Match(bc.entries)
				}
			})
		})
	}
}

// TestMatchConcurrent runs Match from several goroutines (meaningful
// under -race).
func TestMatchConcurrent(t *testing.T) {
	d := mustParse(t, map[string]string{"edge.yaml": edgeYAML}).Domain("edge")
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for i := 0; i < 1000; i++ {
				r, ex := d.Match(kv("remote_address", "10.0.0.1", "path", "/api/v1/users"))
				ok = ok && r != nil && ex && r.Limits[0].RequestsPerUnit == 5
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("concurrent Match gave a wrong answer")
		}
	}
}
