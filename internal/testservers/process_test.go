package testservers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileExists is a Ready probe: nil once path exists.
func fileExists(path string) func(context.Context) error {
	return func(context.Context) error {
		_, err := os.Stat(path)
		return err
	}
}

func TestProcessReadyAndStop(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	// The shell exits 0 on SIGTERM, as a service that drains does.
	p, err := StartProcess(context.Background(), ProcessOptions{
		Name:   "sh",
		Binary: "sh",
		Args:   []string{"-c", `trap 'echo draining; exit 0' TERM; echo hello; touch "$READY"; while :; do sleep 0.05; done`},
		Env:    []string{"READY=" + ready},
		Ready:  fileExists(ready),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("exited right after it was ready")
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !p.Exited() || !strings.Contains(p.Output(), "hello\n") || !strings.Contains(p.Output(), "draining") {
		t.Fatalf("exited %v, output %q", p.Exited(), p.Output())
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
	if err := p.Signal(syscall.SIGHUP); err == nil {
		t.Error("a signal to an exited process succeeded")
	}
}

func TestProcessExitsBeforeReady(t *testing.T) {
	_, err := StartProcess(context.Background(), ProcessOptions{
		Name:   "failing",
		Binary: "sh",
		Args:   []string{"-c", "echo cannot listen >&2; exit 3"},
		Ready:  func(context.Context) error { return errors.New("not yet") },
	})
	if err == nil || !strings.Contains(err.Error(), "failing exited before it served") ||
		!strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "cannot listen") {
		t.Fatalf("error %v: want the exit and the output", err)
	}
}

func TestProcessNotReadyInTime(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, err := StartProcess(context.Background(), ProcessOptions{
		Name:         "stuck",
		Binary:       "sh",
		Args:         []string{"-c", `echo $$ > "$PIDFILE"; exec sleep 600`},
		Env:          []string{"PIDFILE=" + pidFile},
		Ready:        func(context.Context) error { return errors.New("never") },
		StartTimeout: 200 * time.Millisecond,
		Detail:       func() string { return "\nthe detail" },
	})
	if err == nil || !strings.Contains(err.Error(), "not ready within 200ms (last: never)") || !strings.Contains(err.Error(), "the detail") {
		t.Fatalf("error %v", err)
	}
	// The process was killed and reaped: its pid is gone.
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if _, serr := os.Stat("/proc/" + strings.TrimSpace(string(b))); serr == nil {
		t.Errorf("process %s still exists after a failed start", strings.TrimSpace(string(b)))
	}
}

func TestProcessStopKillsAfterGrace(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := StartProcess(context.Background(), ProcessOptions{
		Binary: "sh",
		Args:   []string{"-c", `trap '' TERM; touch "$READY"; while :; do sleep 0.05; done`},
		Env:    []string{"READY=" + ready},
		Ready:  fileExists(ready),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.StopWithin(100 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("StopWithin on a process that ignores SIGTERM: %v", err)
	}
	if !p.Exited() {
		t.Fatal("not reaped")
	}
}

func TestProcessOnlyEnv(t *testing.T) {
	p, err := StartProcess(context.Background(), ProcessOptions{
		Binary:  "/bin/sh",
		Args:    []string{"-c", "env"},
		Env:     []string{"ONLY=1"},
		OnlyEnv: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(p.Output()); !strings.Contains(p.Output(), "ONLY=1") || strings.Contains(p.Output(), "HOME=") {
		t.Errorf("environment %v, want ONLY=1 and nothing of ours", got)
	}
}

func TestStartOnFreePortsRetriesABusyPort(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	attempts := 0
	var seen [][]string
	p, addrs, err := StartOnFreePorts(context.Background(), 2, func(addrs []string) ProcessOptions {
		attempts++
		seen = append(seen, addrs)
		script := "touch " + ready + "; exec sleep 600"
		if attempts == 1 {
			script = "echo listen tcp " + addrs[0] + ": bind: address already in use; exit 1"
		}
		return ProcessOptions{Binary: "sh", Args: []string{"-c", script}, Ready: fileExists(ready)}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if attempts != 2 || len(addrs) != 2 || addrs[0] == addrs[1] || addrs[0] != seen[1][0] {
		t.Fatalf("%d attempts, addresses %v (seen %v)", attempts, addrs, seen)
	}

	// Any other failure is not retried.
	attempts = 0
	_, _, err = StartOnFreePorts(context.Background(), 1, func([]string) ProcessOptions {
		attempts++
		return ProcessOptions{Binary: "sh", Args: []string{"-c", "exit 1"}, Ready: func(context.Context) error { return errors.New("no") }}
	})
	if err == nil || attempts != 1 {
		t.Fatalf("%d attempts, error %v", attempts, err)
	}
}

func TestRunProcessStopsWithTheTest(t *testing.T) {
	var p *Process
	t.Run("owner", func(t *testing.T) {
		p = RunProcess(t, ProcessOptions{Binary: "sleep", Args: []string{"600"}})
	})
	if !p.Exited() {
		t.Fatal("the process outlived its test")
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(10)
	for i := 0; i < 30; i++ {
		if _, err := b.Write([]byte("abc\n")); err != nil {
			t.Fatal(err)
		}
	}
	if b.Lines() != 30 {
		t.Errorf("%d lines, want 30", b.Lines())
	}
	got := b.String()
	if want := "[110 earlier bytes dropped]\nc\nabc\nabc\n"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if len(b.b) > 20 {
		t.Errorf("holds %d bytes, want at most twice the limit", len(b.b))
	}
	small := newTailBuffer(100)
	_, _ = small.Write([]byte("x"))
	if small.String() != "x" {
		t.Errorf("String() = %q", small.String())
	}
}
