package descriptors_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// The reference's test/config merge_domain_key1.yaml and _key2.yaml.
const (
	mergeKey1 = `domain: test-domain
descriptors:
  - key: key1
    value: value1
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: wild
    value: a*
    rate_limit: {unit: minute, requests_per_unit: 1}
`
	mergeKey2 = `domain: test-domain
descriptors:
  - key: key2
    value: value2
    rate_limit: {unit: minute, requests_per_unit: 20}
  - key: wild
    value: ab*
    rate_limit: {unit: minute, requests_per_unit: 2}
`
)

// TestDomainMerge is the reference's TestDomainMerge: both files' limits
// serve under one domain.
func TestDomainMerge(t *testing.T) {
	files := map[string][]byte{"merge_domain_key1.yaml": []byte(mergeKey1), "merge_domain_key2.yaml": []byte(mergeKey2)}
	if _, err := descriptors.Parse(files); err == nil || !strings.Contains(err.Error(), `domain "test-domain" is already defined in merge_domain_key1.yaml`) {
		t.Fatalf("without merging: %v", err)
	}
	cfg, err := descriptors.ParseLimits(files, descriptors.Limits{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Domain("test-domain")
	for _, c := range []struct {
		k, v string
		rpu  uint32
	}{{"key1", "value1", 10}, {"key2", "value2", 20}, {"wild", "abc", 1}} { // the earlier file's wildcard first
		r, _ := d.Match([]descriptors.Entry{{Key: c.k, Value: c.v}})
		if r == nil || len(r.Limits) != 1 || r.Limits[0].RequestsPerUnit != c.rpu {
			t.Errorf("%s=%s: %+v, want %d/min", c.k, c.v, r, c.rpu)
		}
	}
	if cfg.Rules() != 4 || len(d.Rules()) != 4 {
		t.Errorf("rules %d / %d, want 4", cfg.Rules(), len(d.Rules()))
	}
	// The merged domain's rules keep the uids they would have in one
	// file: counters survive a split of one file into two.
	one, err := descriptors.Parse(map[string][]byte{"one.yaml": []byte(mergeKey1 + strings.TrimPrefix(mergeKey2, "domain: test-domain\ndescriptors:\n"))})
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := one.Domain("test-domain").Match([]descriptors.Entry{{Key: "key2", Value: "value2"}})
	r2, _ := d.Match([]descriptors.Entry{{Key: "key2", Value: "value2"}})
	if r1.Limits[0].UID != r2.Limits[0].UID {
		t.Errorf("uid %q in one file, %q merged", r1.Limits[0].UID, r2.Limits[0].UID)
	}
}

// TestDuplicateKeyDomainMerge is the reference's test of the same name:
// a duplicate key across merged files is still an error, naming both.
func TestDuplicateKeyDomainMerge(t *testing.T) {
	_, err := descriptors.ParseLimits(map[string][]byte{"a/merge_domain_key1.yaml": []byte(mergeKey1), "b/merge_domain_key1.yaml": []byte(mergeKey1)}, descriptors.Limits{MergeDomains: true})
	var e *descriptors.Error
	if !errors.Is(err, descriptors.ErrInvalidConfig) || !errors.As(err, &e) {
		t.Fatalf("error %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`b/merge_domain_key1.yaml:3: domain "test-domain": duplicate descriptor composite key "test-domain.key1_value1": already defined in a/merge_domain_key1.yaml:3`,
		`b/merge_domain_key1.yaml:6: domain "test-domain": duplicate descriptor composite key "test-domain.wild_a*": already defined in a/merge_domain_key1.yaml:6`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error\n%s\nlacks\n%s", msg, want)
		}
	}
}

func TestLoadMerged(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"1.yaml": mergeKey1, "2.yaml": mergeKey2, "other.yaml": "domain: other\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := descriptors.Load(dir); err == nil {
		t.Fatal("Load merged the files")
	}
	cfg, err := descriptors.LoadLimits(dir, descriptors.Limits{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Domains()) != 2 || cfg.Rules() != 4 {
		t.Errorf("%d domains, %d rules", len(cfg.Domains()), cfg.Rules())
	}
	// Errors of another file are still reported with merging on.
	if err := os.WriteFile(filepath.Join(dir, "3.yaml"), []byte("domain: test-domain\ndescriptors:\n  - key: key3\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := descriptors.LoadLimits(dir, descriptors.Limits{MergeDomains: true}); err == nil || !strings.Contains(err.Error(), "3.yaml:4") {
		t.Errorf("bad merged file: %v", err)
	}
}
