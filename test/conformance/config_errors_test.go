package conformance

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// configError is one load-error test of the reference's config tests.
type configError struct {
	Name      string            `yaml:"name"`
	Merge     bool              `yaml:"merge"` // serve with --merge-domain-config
	Files     map[string]string `yaml:"files"`
	Want      []string          `yaml:"want"`      // substrings of envoy-rls's message
	Reference string            `yaml:"reference"` // the reference's message
}

// TestConfigErrors checks that every config the reference refuses is
// refused by the built binary, both by `validate` and by `serve` at
// start, with a message naming the file, line and problem.
func TestConfigErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/errors/config_errors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []configError
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range c.Files {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var args []string
			if c.Merge {
				// validate has no merge flag; serve reads every
				// subdirectory's files only as one directory, so the two
				// files go side by side under distinct names.
				flat := t.TempDir()
				for name, content := range c.Files {
					if err := os.WriteFile(filepath.Join(flat, strings.ReplaceAll(name, "/", "_")), []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				args = []string{"serve", "--config", flat, "--merge-domain-config", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--debug-addr", ""}
			} else {
				args = []string{"validate", dir}
			}
			out, err := exec.Command(binary, args...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("envoy-rls %s: %v, want a refusal\n%s", strings.Join(args, " "), err, out)
			}
			for _, w := range c.Want {
				if !strings.Contains(string(out), w) {
					t.Errorf("message lacks %q (the reference says %q):\n%s", w, c.Reference, out)
				}
			}
		})
	}
}
