package descriptors

import (
	"errors"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func TestAppendComponent(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "0:"},
		{"edge", "4:edge"},
		{"1:a", "3:1:a"},
		{"0123456789", "10:0123456789"},
	} {
		if got := string(AppendComponent(nil, tt.in)); got != tt.want {
			t.Errorf("AppendComponent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestComponentsCollisionFree checks that different component lists,
// including the reference service's known collision and values holding
// ':' and digits, never encode to the same key.
func TestComponentsCollisionFree(t *testing.T) {
	lists := [][]string{
		{"a_b", "c"}, {"a", "b_c"}, {"a_b_c"},
		{"x", "a_y_b", "y", "c"}, {"x", "a", "y", "b_y_c"},
		{"1:a"}, {"a"}, {"1:a", ""}, {"", "1:a"}, {"1", "a"}, {"1:", "a"},
		{"2:ab"}, {"ab"}, {"a", "b"}, {"2", "ab"}, {"22:"}, {"2", "2:"},
		{"10:0123456789"}, {"0123456789"}, {"1", "0:0123456789"},
		{}, {""}, {"", ""}, {":"}, {"0:"}, {"0", ":"},
	}
	seen := map[string][]string{}
	for _, l := range lists {
		var b []byte
		for _, s := range l {
			b = AppendComponent(b, s)
		}
		if prev, ok := seen[string(b)]; ok {
			t.Errorf("%q and %q both encode to %q", prev, l, b)
		}
		seen[string(b)] = l
	}
}

func TestRuleUIDGolden(t *testing.T) {
	c := mustParse(t, map[string]string{"edge.yaml": `
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {rate: 100/min}
    descriptors:
      - key: path
        value: /api/*
        rate_limits:
          - {rate: 10/s, strategy: token_bucket}
          - {rate: 1000/d, strategy: gcra}
  - key: remote_address
    value: "1:2"
    rate_limit: {unlimited: true}
  - key: a_b
    value: c
    rate_limit: {rate: 1/s}
  - key: a
    value: b_c
    rate_limit: {rate: 1/s}
`})
	d := c.Domain("edge")
	tests := []struct {
		entries []Entry
		idx     int
		want    string
	}{
		{kv("remote_address", "9.9.9.9"), 0, "1:r4:edge1:114:remote_address0:12:fixed_window1:0"},
		{kv("remote_address", "9.9.9.9", "path", "/api/v1"), 0, "1:r4:edge1:214:remote_address0:4:path6:/api/*12:token_bucket1:0"},
		{kv("remote_address", "9.9.9.9", "path", "/api/v1"), 1, "1:r4:edge1:214:remote_address0:4:path6:/api/*4:gcra1:1"},
		{kv("remote_address", "1:2"), 0, "1:r4:edge1:114:remote_address3:1:20:1:0"},
		{kv("a_b", "c"), 0, "1:r4:edge1:13:a_b1:c12:fixed_window1:0"},
		{kv("a", "b_c"), 0, "1:r4:edge1:11:a3:b_c12:fixed_window1:0"},
	}
	for _, tt := range tests {
		r, _ := d.Match(tt.entries)
		if r == nil {
			t.Fatalf("no rule for %v", tt.entries)
		}
		if got := r.Limits[tt.idx].UID; got != tt.want {
			t.Errorf("UID of %s[%d] = %q, want %q", r.Path, tt.idx, got, tt.want)
		}
	}
}

func TestOverrideLimit(t *testing.T) {
	d := mustParse(t, map[string]string{"edge.yaml": "domain: edge\n"}).Domain("edge")
	l, err := OverrideLimit(d, kv("remote_address", "1.2.3.4", "path", "/x"), 10, UnitMinute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1:o4:edge1:214:remote_address4:path2:106:MINUTE1:112:fixed_window"; l.UID != want {
		t.Errorf("UID = %q, want %q", l.UID, want)
	}
	if l.Strategy.Name() != strategies.Default || l.Limit.Requests != 10 || l.Limit.Period != strategies.Minute ||
		l.UnitMultiplier != 1 || l.Unit != UnitMinute || l.RequestsPerUnit != 10 || l.Rule != nil {
		t.Errorf("override = %+v", l)
	}
	// The UID ignores values (the limiter appends them) but not the rate.
	l2, _ := OverrideLimit(d, kv("remote_address", "5.6.7.8", "path", "/y"), 10, UnitMinute, 1)
	l3, _ := OverrideLimit(d, kv("remote_address", "1.2.3.4", "path", "/x"), 10, UnitMinute, 5)
	if l2.UID != l.UID || l3.UID == l.UID || l3.Limit.Period != 5*strategies.Minute || l3.UnitMultiplier != 5 {
		t.Errorf("uids %q %q %q, period %d", l.UID, l2.UID, l3.UID, l3.Limit.Period)
	}
	if l4, err := OverrideLimit(nil, nil, 0, UnitYear, 1); err != nil || l4.Limit.Requests != 0 || l4.UID != "1:o0:1:01:04:YEAR1:112:fixed_window" {
		t.Errorf("override on unknown domain: %+v, %v", l4, err)
	}
	for _, bad := range []Unit{UnitUnknown, 8} {
		if _, err := OverrideLimit(d, nil, 1, bad, 1); !errors.Is(err, ErrBadOverride) {
			t.Errorf("unit %d: %v", bad, err)
		}
	}
	if _, err := OverrideLimit(d, nil, 1, UnitYear, 4294967295); !errors.Is(err, ErrBadOverride) {
		t.Errorf("huge multiplier: %v", err)
	}
}

func BenchmarkOverrideLimit(b *testing.B) {
	d := mustParse(b, map[string]string{"edge.yaml": "domain: edge\n"}).Domain("edge")
	e := kv("remote_address", "1.2.3.4", "path", "/x")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OverrideLimit(d, e, 10, UnitMinute, 1); err != nil {
			b.Fatal(err)
		}
	}
}
