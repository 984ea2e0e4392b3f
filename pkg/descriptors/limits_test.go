package descriptors

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestErrorBudget lists the first MaxErrors problems and counts the rest
// in a last line.
func TestErrorBudget(t *testing.T) {
	name := filepath.Join("testdata", "limits", "too_many_errors.yaml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		max, listed int
		last        string
	}{
		{0, 100, "... and 50 more problems"}, // the default
		{3, 3, "... and 147 more problems"},
		{150, 150, ""},
	} {
		_, err := ParseLimits(map[string][]byte{name: data}, Limits{MaxErrors: tt.max})
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("MaxErrors %d: error %v does not wrap ErrInvalidConfig", tt.max, err)
		}
		got := problems(err)
		if len(got) != tt.listed {
			t.Errorf("MaxErrors %d: %d problems listed, want %d", tt.max, len(got), tt.listed)
		}
		if want := name + `:4: domain "d", descriptors[0] (key "k0"): unknown key "colour"`; !strings.HasPrefix(got[0], want) {
			t.Errorf("MaxErrors %d: first problem %q, want prefix %q", tt.max, got[0], want)
		}
		lines := strings.Split(err.Error(), "\n")
		if last := lines[len(lines)-1]; tt.last != "" && last != tt.last {
			t.Errorf("MaxErrors %d: last line %q, want %q", tt.max, last, tt.last)
		} else if tt.last == "" && strings.Contains(err.Error(), "more problems") {
			t.Errorf("MaxErrors %d: nothing dropped, but the error says %q", tt.max, last)
		}
	}
}

// TestErrorBudgetAcrossFiles shares one budget among the files of a load.
func TestErrorBudgetAcrossFiles(t *testing.T) {
	files := map[string][]byte{}
	for _, n := range []string{"a.yaml", "b.yaml", "c.yaml"} {
		files[n] = []byte("domain: " + strings.TrimSuffix(n, ".yaml") + "\nx: 1\ny: 2\n")
	}
	_, err := ParseLimits(files, Limits{MaxErrors: 4})
	got := problems(err)
	want := []string{
		`a.yaml:2: domain "a": unknown key "x" (valid keys: domain, descriptors)`,
		`a.yaml:3: domain "a": unknown key "y" (valid keys: domain, descriptors)`,
		`b.yaml:2: domain "b": unknown key "x" (valid keys: domain, descriptors)`,
		`b.yaml:3: domain "b": unknown key "y" (valid keys: domain, descriptors)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || !strings.HasSuffix(err.Error(), "\n... and 2 more problems") {
		t.Errorf("got\n%v\nwant the problems\n%s\nand a count of 2 more", err, strings.Join(want, "\n"))
	}
	// A file whose problems were all dropped is still refused.
	if _, err := ParseLimits(map[string][]byte{"a.yaml": files["a.yaml"], "b.yaml": files["b.yaml"]}, Limits{MaxErrors: 1}); err == nil {
		t.Fatal("no error")
	}
}

// TestAliasesWithinBudget keeps what anchors and aliases are for: a block
// written once and used in several places.
func TestAliasesWithinBudget(t *testing.T) {
	src := `domain: d
descriptors:
  - key: a
    rate_limit: &ten {unit: second, requests_per_unit: 10}
  - key: b
    rate_limit: *ten
  - key: c
    descriptors: &inner
      - key: x
        rate_limit: *ten
  - key: e
    descriptors: *inner
`
	c, err := Parse(map[string][]byte{"a.yaml": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules() != 6 { // a, b, c, c.x, e, e.x
		t.Errorf("Rules() = %d, want 6", c.Rules())
	}
	r, _ := c.Domain("d").Match(kv("e", "1", "x", "2"))
	if r == nil || r.Limits[0].RequestsPerUnit != 10 {
		t.Errorf("e.x = %+v", r)
	}
	// The same file is refused when its expanded size passes a bound
	// that the file as written stays within.
	_, err = ParseLimits(map[string][]byte{"a.yaml": []byte(src)}, Limits{MaxNodes: 50})
	if got := problems(err); len(got) != 1 || !strings.HasPrefix(got[0], "a.yaml:12: alias *inner expands the file past 50 YAML nodes") {
		t.Errorf("MaxNodes 50: %v", err)
	}
}

// TestMoreNodesThanBudget refuses a large file without aliases by its
// node count, and names it as such.
func TestMoreNodesThanBudget(t *testing.T) {
	src := "domain: d\nx: [" + strings.Repeat("a,", 100) + "a]\n"
	_, err := ParseLimits(map[string][]byte{"a.yaml": []byte(src)}, Limits{MaxNodes: 50})
	want := "a.yaml:2: the file holds more than 50 YAML nodes (split it)"
	if got := problems(err); len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want [%q]", got, want)
	}
}

// TestAliasBombMemory parses a billion-laughs file, and a cycle, with
// little memory: the expansion is measured, never built.
func TestAliasBombMemory(t *testing.T) {
	for _, f := range []string{"alias_bomb.yaml", "alias_cycle.yaml"} {
		name := filepath.Join("testdata", "errors", f)
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = Parse(map[string][]byte{name: data})
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: no error", f)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%s: %d bytes allocated for a %d-byte file", f, alloc, len(data))
		}
		if len(err.Error()) > 1024 {
			t.Errorf("%s: error of %d bytes", f, len(err.Error()))
		}
	}
}

// loadSoon runs LoadLimits in a goroutine and fails the test, rather than
// hanging it, should the load block (as an open of a FIFO would).
func loadSoon(t *testing.T, path string, lim Limits) (*Config, error) {
	t.Helper()
	type result struct {
		c   *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := LoadLimits(path, lim)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(time.Minute):
		t.Fatalf("LoadLimits(%s) has not returned after a minute", path)
		return nil, nil
	}
}

// TestLoadRefusesNonRegular refuses FIFOs and devices: as the config
// path, through a symlink, and as files of a directory.
func TestLoadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	fifoDir := filepath.Join(dir, "withfifo")
	zeroDir := filepath.Join(dir, "withzero")
	for _, d := range []string{fifoDir, zeroDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "a.yaml"), []byte("domain: a\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "b.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(zeroDir, "b.yml")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, what string }{
		{fifo, "is a FIFO"},
		{"/dev/zero", "is a character device"},
		{link, "zero.yaml is a character device"},
		{fifoDir, "b.yaml is a FIFO"},
		{zeroDir, "b.yml is a character device"},
	} {
		c, err := loadSoon(t, tt.path, Limits{})
		if !errors.Is(err, ErrNotRegular) || c != nil {
			t.Errorf("%s: got %v, want ErrNotRegular", tt.path, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.what) {
			t.Errorf("%s: error %q does not say %q", tt.path, err, tt.what)
		}
	}
}

// TestLoadTooLarge bounds the bytes read by one load: of a file, and of a
// directory's files together.
func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	rule := func(domain string, pad int) []byte {
		return []byte(fmt.Sprintf("domain: %s\n# %s\n", domain, strings.Repeat("x", pad)))
	}
	one := filepath.Join(dir, "one.yaml")
	if err := os.WriteFile(one, rule("one", 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(rule("one", 1000)))
	if _, err := loadSoon(t, one, Limits{MaxBytes: size}); err != nil {
		t.Errorf("a file of exactly MaxBytes: %v", err)
	}
	_, err := loadSoon(t, one, Limits{MaxBytes: size - 1})
	if want := fmt.Sprintf("one.yaml is %d bytes, more than the %d bytes left of the limit (--config-max-bytes)", size, size-1); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want ErrTooLarge saying %q", err, want)
	}

	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(sub, n+".yaml"), rule(n, 1000), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	size = int64(len(rule("a", 1000)))
	if c, err := loadSoon(t, sub, Limits{MaxBytes: 3 * size}); err != nil || len(c.Domains()) != 3 {
		t.Errorf("three files within the limit: %v", err)
	}
	_, err = loadSoon(t, sub, Limits{MaxBytes: 3*size - 1})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "c.yaml") {
		t.Errorf("three files past the limit: got %v, want ErrTooLarge naming c.yaml", err)
	}
}
