package descriptors

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestConfigErrors loads each fixture of testdata/errors alone and checks
// the full text of every problem it reports.
func TestConfigErrors(t *testing.T) {
	const d = `domain "d", descriptors[0] (key "k"): `
	tests := []struct {
		file string
		want []string // one per reported problem, after "file:"
	}{
		{"empty_domain.yaml", []string{`1: domain must not be empty`}},
		{"missing_domain.yaml", []string{`1: domain must not be empty`}},
		{"empty_file.yaml", []string{`1: empty file: domain must not be empty`}},
		{"empty_key.yaml", []string{`5: domain "d", descriptors[0].descriptors[0] (key ""): descriptor key must not be empty`}},
		{"duplicate_key.yaml", []string{`6: domain "d", descriptors[1] (key "k"): duplicate descriptor composite key "d.k_v" (first at line 3)`}},
		{"duplicate_key_only.yaml", []string{`5: domain "d", descriptors[1] (key "k"): duplicate descriptor composite key "d.k" (first at line 3)`}},
		{"bad_unit.yaml", []string{`5: ` + d + `rate_limit: invalid rate limit unit "fortnight" (valid units: second, minute, hour, day, week, month, year)`}},
		{"unlimited_with_unit.yaml", []string{`6: ` + d + `rate_limit: unlimited: true must not be combined with unit`}},
		{"unlimited_with_rate.yaml", []string{`6: ` + d + `rate_limit: unlimited: true must not be combined with rate`}},
		{"replaces_empty.yaml", []string{`8: ` + d + `rate_limit: replaces[0]: name must not be empty`}},
		{"replaces_self.yaml", []string{`5: ` + d + `rate_limit: replaces names "mine", a limit of the same descriptor`}},
		{"share_threshold_no_wildcard.yaml", []string{`5: ` + d + `share_threshold can only be used with a wildcard value (one holding '*'), got value "exact"`}},
		{"root_not_map.yaml", []string{`1: expected a map with domain and descriptors, got a list`}},
		{"descriptor_not_map.yaml", []string{`3: domain "d", descriptors[0]: expected a map with key and value, got "just-a-string"`}},
		{"rate_limit_not_map.yaml", []string{`4: ` + d + `rate_limit: expected a map, got "10/s"`}},
		{"metadata_not_map.yaml", []string{`4: ` + d + `metadata: expected a map, got a list`}},
		{"unknown_key.yaml", []string{`8: domain "edge", descriptors[1].descriptors[0] (key "path"): unknown key "rate_limt" (valid keys: key, value, rate_limit, rate_limits, descriptors, shadow_mode, detailed_metric, value_to_metric, share_threshold, quota_mode, metadata, exempt)`}},
		{"unknown_key_rate_limit.yaml", []string{
			`5: ` + d + `rate_limit: unknown key "units" (valid keys: unit, requests_per_unit, unlimited, name, replaces, rate, strategy, burst, max_debt)`,
			`6: ` + d + `rate_limit: requests_per_unit needs a unit`,
		}},
		{"unknown_key_root.yaml", []string{`2: domain "d": unknown key "descriptor" (valid keys: domain, descriptors)`}},
		{"bad_rate.yaml", []string{`5: ` + d + `rate_limit: bad rate "10/2h30m": compound period "2h30m" is not supported; write it in one unit, such as 150m for 2h30m`}},
		{"bad_rate_syntax.yaml", []string{`5: ` + d + `rate_limit: bad rate "2h30m": expected "<limit>/<period>" or "<limit> per <period>", such as "100/min"`}},
		{"rate_and_unit.yaml", []string{`5: ` + d + `rate_limit: rate and unit/requests_per_unit are exclusive: give one or the other`}},
		{"unknown_strategy.yaml", []string{`6: ` + d + `rate_limit: unknown strategy "magic" (valid strategies: ` + strings.Join(strategies.Names(), ", ") + `)`}},
		{"prepare_error.yaml", []string{`5: ` + d + `rate_limit: strategy sliding_window_log: invalid limit: sliding_window_log: requests 20000 above the log bound 10000...`}},
		{"bad_exempt.yaml", []string{`5: domain "d", descriptors[0] (key "remote_address"): exempt[0]: exempt entry "10.0.0.0/33" is not a CIDR block such as 10.0.0.0/8 or ::1/128`}},
		{"rate_limit_and_rate_limits.yaml", []string{`7: ` + d + `rate_limit and rate_limits are exclusive: give one limit in rate_limit or several in rate_limits`}},
		{"burst_ignored.yaml", []string{`6: ` + d + `rate_limit: burst has no effect with strategy fixed_window (used by ` + strings.Join(strategies.Users("burst"), ", ") + `)`}},
		{"max_debt_ignored.yaml", []string{`7: ` + d + `rate_limit: max_debt has no effect with strategy token_bucket (used by ` + strings.Join(strategies.Users("max_debt"), ", ") + `)`}},
		{"invalid_yaml.yaml", []string{`3: invalid YAML: did not find expected ',' or '}'`}},
		{"bad_bool.yaml", []string{`4: ` + d + `shadow_mode: expected true or false, got "sometimes"`}},
		{"negative_rpu.yaml", []string{`4: ` + d + `rate_limit: requests_per_unit: expected a whole number from 0 to 4294967295, got "-1"`}},
		{"no_limit_given.yaml", []string{`5: ` + d + `rate_limit: give unit and requests_per_unit, a rate such as "100/min", or unlimited: true`}},
		{"alias_cycle.yaml", []string{`3: alias *a refers to the node that holds it (anchor &a at line 3): a cycle`}},
		{"alias_bomb.yaml", []string{`7: alias *a4 expands the file past 1048576 YAML nodes: aliases repeat too much (write the repeated part out, or split the file)`}},
		{"deep_nesting.yaml", []string{`199: the YAML nests more than 200 levels deep (aliases expanded)`}},
		{"multiple_errors.yaml", []string{
			`3: domain "d", descriptors[0] (key ""): descriptor key must not be empty`,
			`5: domain "d", descriptors[1] (key "k"): rate_limit: invalid rate limit unit "fortnight" (valid units: second, minute, hour, day, week, month, year)`,
			`8: domain "d", descriptors[2] (key "k"): share_threshold can only be used with a wildcard value (one holding '*'), got value "v"`,
			`9: domain "d", descriptors[2] (key "k"): unknown key "colour" (valid keys: key, value, rate_limit, rate_limits, descriptors, shadow_mode, detailed_metric, value_to_metric, share_threshold, quota_mode, metadata, exempt)`,
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			seen[tt.file] = true
			name := filepath.Join("testdata", "errors", tt.file)
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(map[string][]byte{name: data})
			if err == nil {
				t.Fatalf("Parse succeeded with %d rules, want errors", cfg.Rules())
			}
			if cfg != nil {
				t.Error("Parse returned a config with its error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error does not wrap ErrInvalidConfig: %v", err)
			}
			got := problems(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				want := name + ":" + w
				if p, ok := strings.CutSuffix(want, "..."); ok && strings.HasPrefix(got[i], p) {
					continue // the rest of the message belongs to the strategy
				}
				if got[i] != want {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], want)
				}
			}
		})
	}
	// Every fixture has a case.
	files, _ := filepath.Glob(filepath.Join("testdata", "errors", "*.yaml"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no test case", f)
		}
	}
}

// problems returns the text of every *Error joined in err.
func problems(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if ce, ok := e.(*Error); ok {
			out = append(out, ce.Error())
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func TestDuplicateDomainAcrossFiles(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "dupdomain"))
	got := problems(err)
	want := filepath.Join("testdata", "dupdomain", "b.yaml") + `:2: domain "shared": domain "shared" is already defined in ` + filepath.Join("testdata", "dupdomain", "a.yaml")
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q, want [%q]", got, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Domain != "shared" || ce.Line != 2 {
		t.Errorf("errors.As(*Error) = %+v", ce)
	}
}

func TestErrorsFromSeveralFiles(t *testing.T) {
	_, err := Parse(map[string][]byte{
		"b.yaml": []byte("domain: b\ndescriptors:\n  - key: \"\"\n"),
		"a.yaml": []byte("domain: a\nbogus: 1\n"),
	})
	got := problems(err)
	want := []string{
		`a.yaml:2: domain "a": unknown key "bogus" (valid keys: domain, descriptors)`,
		`b.yaml:3: domain "b", descriptors[0] (key ""): descriptor key must not be empty`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDuplicateDomainOfInvalidFile reports the duplicate even when the
// first file of the domain has problems of its own.
func TestDuplicateDomainOfInvalidFile(t *testing.T) {
	_, err := Parse(map[string][]byte{
		"a.yaml": []byte("domain: d\ndescriptors:\n  - key: \"\"\n"),
		"b.yaml": []byte("domain: d\n"),
	})
	got := problems(err)
	want := []string{
		`a.yaml:3: domain "d", descriptors[0] (key ""): descriptor key must not be empty`,
		`b.yaml:1: domain "d": domain "d" is already defined in a.yaml`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
