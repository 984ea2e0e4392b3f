package source_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/source"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// events records what a source delivers.
type events struct {
	mu      sync.Mutex
	applied []*descriptors.Config
	refused []error
}

func (e *events) Apply(cfg *descriptors.Config) {
	e.mu.Lock()
	e.applied = append(e.applied, cfg)
	e.mu.Unlock()
}

func (e *events) Refuse(err error) {
	e.mu.Lock()
	e.refused = append(e.refused, err)
	e.mu.Unlock()
}

func (e *events) counts() (int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.applied), len(e.refused)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFileSource: the first load is applied, a bad change is refused with
// the file's problems, a fix is applied, and Run returns nil when its
// context ends.
func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		t.Helper()
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "edge.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	write("domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 1}\n")
	ev := &events{}
	src := &source.File{Path: dir, Debounce: 20 * time.Millisecond, NoSignal: true}
	if src.Name() != "file" {
		t.Errorf("Name() = %q", src.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, ev) }()
	waitFor(t, "the first load", func() bool { a, _ := ev.counts(); return a == 1 })

	write("domain: edge\ndescriptors:\n  - key: \"\"\n")
	waitFor(t, "the refusal", func() bool { _, r := ev.counts(); return r == 1 })
	ev.mu.Lock()
	msg := ev.refused[0].Error()
	ev.mu.Unlock()
	if !strings.Contains(msg, "edge.yaml:3: domain \"edge\", descriptors[0] (key \"\"): descriptor key must not be empty") {
		t.Errorf("refusal: %v", msg)
	}

	write("domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 2}\n")
	waitFor(t, "the fix", func() bool { a, _ := ev.counts(); return a == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestFileSourceMissingPath: a path that does not exist is an error of
// Run, before any load.
func TestFileSourceMissingPath(t *testing.T) {
	ev := &events{}
	err := (&source.File{Path: filepath.Join(t.TempDir(), "nope"), NoSignal: true}).Run(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "source: watching") {
		t.Errorf("Run = %v, want a watch error", err)
	}
	if a, r := ev.counts(); a != 0 || r != 0 {
		t.Errorf("applied %d, refused %d before the error", a, r)
	}
}
