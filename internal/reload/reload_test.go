package reload

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// eventually is how long a change may take to be noticed; generous, since
// the CI machine may be busy.
const eventually = 5 * time.Second

// harness runs a Watcher and counts its OnChange calls.
type harness struct {
	t        *testing.T
	w        *Watcher
	calls    atomic.Int64
	inFlight atomic.Int64
	overlap  atomic.Bool
	changed  chan struct{}
	done     chan error
	cancel   context.CancelFunc
}

func start(t *testing.T, path string, debounce time.Duration, during func()) *harness {
	t.Helper()
	h := &harness{t: t, changed: make(chan struct{}, 1000), done: make(chan error, 1)}
	w, err := New(Options{Path: path, Debounce: debounce, Logger: zaptest.NewLogger(t), OnChange: func() {
		if h.inFlight.Add(1) > 1 {
			h.overlap.Store(true)
		}
		if during != nil {
			during()
		}
		h.calls.Add(1)
		h.inFlight.Add(-1)
		h.changed <- struct{}{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil // later stops return at once
	case <-time.After(eventually):
		h.t.Fatal("Run did not return after cancel")
	}
	if h.overlap.Load() {
		h.t.Error("OnChange calls overlapped")
	}
}

// waitChange waits for one OnChange call.
func (h *harness) waitChange(what string) {
	h.t.Helper()
	select {
	case <-h.changed:
	case <-time.After(eventually):
		h.t.Fatalf("%s: no OnChange within %v", what, eventually)
	}
}

// quiet waits until no OnChange comes for d, and fails if one does.
func (h *harness) quiet(what string, d time.Duration) {
	h.t.Helper()
	select {
	case <-h.changed:
		h.t.Fatalf("%s: unexpected OnChange", what)
	case <-time.After(d):
	}
}

// settle absorbs the OnChange calls still due to earlier writes (a
// rewrite is a truncate and a write, two events that a loaded machine
// may deliver further apart than the debounce), until none has come for
// d, so that a following quiet() judges only what comes after.
func (h *harness) settle(d time.Duration) {
	for {
		select {
		case <-h.changed:
		case <-time.After(d):
			return
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFileRewrite(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	h := start(t, cfg, 50*time.Millisecond, nil)
	write(t, cfg, "domain: b\n")
	h.waitChange("rewrite")
	h.settle(300 * time.Millisecond)
	// Other files of the directory do not matter.
	write(t, filepath.Join(dir, "other.yaml"), "x")
	write(t, filepath.Join(dir, ".config.yaml.swp"), "x")
	h.quiet("unrelated files", 500*time.Millisecond)
}

func TestFileRenameOver(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	h := start(t, cfg, 50*time.Millisecond, nil)
	// An editor's atomic save: write a temporary file, rename it over.
	tmp := filepath.Join(dir, ".config.yaml.tmp")
	write(t, tmp, "domain: b\n")
	if err := os.Rename(tmp, cfg); err != nil {
		t.Fatal(err)
	}
	h.waitChange("rename over")
	// The watch survives the inode change: a second save is noticed too.
	write(t, tmp, "domain: c\n")
	if err := os.Rename(tmp, cfg); err != nil {
		t.Fatal(err)
	}
	h.waitChange("second rename over")
}

func TestDirectoryNewFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "domain: a\n")
	h := start(t, dir, 50*time.Millisecond, nil)
	write(t, filepath.Join(dir, "b.yml"), "domain: b\n")
	h.waitChange("new file")
	write(t, filepath.Join(dir, "notes.txt"), "not a config")
	h.quiet("non-YAML file", 500*time.Millisecond)
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitChange("removed file")
}

// configMap lays out a Kubernetes ConfigMap volume in dir: a timestamped
// data directory, the ..data link to it, and a visible symlink per file.
func configMap(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	data := filepath.Join(dir, "..2024_01_01_00_00_00.000000001")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		write(t, filepath.Join(data, name), content)
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// swapConfigMap updates the volume as the kubelet does: a new data
// directory, a ..data_tmp link to it renamed over ..data, the old
// directory removed.
func swapConfigMap(t *testing.T, dir, stamp string, files map[string]string) {
	t.Helper()
	old, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "..2024_"+stamp)
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		write(t, filepath.Join(data, name), content)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(data), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
		t.Fatal(err)
	}
}

func TestConfigMapSwap(t *testing.T) {
	for _, mode := range []string{"directory", "file"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			configMap(t, dir, map[string]string{"config.yaml": "domain: a\n"})
			path := dir
			if mode == "file" {
				path = filepath.Join(dir, "config.yaml")
			}
			h := start(t, path, 50*time.Millisecond, nil)
			swapConfigMap(t, dir, "b", map[string]string{"config.yaml": "domain: b\n"})
			h.waitChange("first swap")
			got, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
			if err != nil || string(got) != "domain: b\n" {
				t.Fatalf("config after swap = %q, %v", got, err)
			}
			swapConfigMap(t, dir, "c", map[string]string{"config.yaml": "domain: c\n"})
			h.waitChange("second swap")
		})
	}
}

func TestSymlinkTargetEditedInPlace(t *testing.T) {
	real := t.TempDir()
	target := filepath.Join(real, "rules.yaml")
	write(t, target, "domain: a\n")
	dir := t.TempDir()
	link := filepath.Join(dir, "config.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	h := start(t, link, 50*time.Millisecond, nil)
	write(t, target, "domain: b\n")
	h.waitChange("target edited")

	// Repointing the link (ln -sfn: a new link renamed over) is a change.
	other := filepath.Join(real, "other.yaml")
	write(t, other, "domain: c\n")
	tmp := filepath.Join(dir, ".config.yaml.new")
	if err := os.Symlink(other, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	h.waitChange("link repointed")
	write(t, other, "domain: d\n")
	h.waitChange("new target edited")
}

func TestTrigger(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	h := start(t, cfg, 50*time.Millisecond, nil)
	h.w.Trigger()
	h.waitChange("trigger")
	for range 10 {
		h.w.Trigger()
	}
	h.waitChange("burst of triggers")
	time.Sleep(500 * time.Millisecond)
	if n := h.calls.Load(); n > 3 {
		t.Errorf("%d OnChange calls for two trigger bursts, want at most 3", n)
	}
}

func TestDebounce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	h := start(t, cfg, 300*time.Millisecond, nil)
	const writes = 40
	for i := range writes {
		write(t, cfg, "domain: a"+string(rune('a'+i%26))+"\n")
		time.Sleep(5 * time.Millisecond)
	}
	h.waitChange("burst")
	time.Sleep(time.Second)
	if n := h.calls.Load(); n < 1 || n > 4 {
		t.Errorf("%d OnChange calls for %d writes, want between 1 and 4", n, writes)
	}
}

func TestCallsNeverOverlap(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	h := start(t, cfg, 10*time.Millisecond, func() { time.Sleep(100 * time.Millisecond) })
	for range 5 {
		write(t, cfg, "domain: b\n")
		h.w.Trigger()
		time.Sleep(30 * time.Millisecond)
	}
	h.waitChange("slow OnChange")
	h.waitChange("change during a call")
	h.stop() // fails the test on overlap
}

func TestDirectoryDisappearsAndReturns(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cfg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	h := start(t, cfg, 50*time.Millisecond, nil)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.waitChange("directory removed")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, cfg, "domain: b\n")
	h.waitChange("directory back")
	// Drain the calls of the return, then check the new watch works.
	time.Sleep(1500 * time.Millisecond)
	for len(h.changed) > 0 {
		<-h.changed
	}
	write(t, cfg, "domain: c\n")
	h.waitChange("write after the return")
}

func TestRunStopsWithoutLeak(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "domain: a\n")
	before := runtime.NumGoroutine()
	for range 3 {
		w, err := New(Options{Path: cfg, OnChange: func() {}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		w.Trigger()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(eventually):
			t.Fatal("Run did not return after cancel")
		}
		if err := w.Run(context.Background()); err == nil {
			t.Fatal("a second Run succeeded")
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close after Run: %v", err)
		}
	}
	deadline := time.Now().Add(eventually)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	for name, opts := range map[string]Options{
		"no path":           {OnChange: func() {}},
		"no callback":       {Path: dir},
		"missing path":      {Path: filepath.Join(dir, "absent.yaml"), OnChange: func() {}},
		"negative debounce": {Path: dir, Debounce: -time.Second, OnChange: func() {}},
	} {
		if w, err := New(opts); err == nil {
			w.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	w, err := New(Options{Path: dir, OnChange: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close without Run: %v", err)
	}
}

// TestLinkToDeviceIsNotWatched keeps a config symlink to a device from
// adding a watch on the device's directory (/dev): the load refuses such
// a file, and the other files of the directory are still watched.
func TestLinkToDeviceIsNotWatched(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Path: dir, Logger: zaptest.NewLogger(t), OnChange: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.sync()
	if len(w.watched) != 1 || !w.watched[dir] {
		t.Errorf("watched %v, want only %s", w.watched, dir)
	}
}
