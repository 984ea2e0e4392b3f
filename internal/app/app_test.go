package app

import (
	"context"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/xdstest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func serveSettings(t *testing.T, args ...string) settings.Serve {
	t.Helper()
	all := append([]string{"--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t), "--debug-addr", freeAddr(t)}, args...)
	s, err := settings.ParseServe(all, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitGoroutines waits until at most n goroutines run, failing after a
// generous deadline.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runUntilServing runs Run until its HTTP listener answers, then cancels
// it and returns Run's error.
func runUntilServing(t *testing.T, s settings.Serve) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, s, zap.NewNop()) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		default:
		}
		if c, err := net.Dial("tcp", s.HTTPAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never served")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	return <-done
}

// TestRunStopsEverything: Run with each config source returns nil when
// its context ends and leaves no goroutine behind (the source, the
// SIGHUP handler, the watcher, the servers and the health watcher are all
// waited for).
func TestRunStopsEverything(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {rate: 1/s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := xdstest.Start(t, xdstest.Options{Plaintext: true})
	cp.SetDomains("1", &rlconfv3.RateLimitConfig{Domain: "d"})
	// os/signal starts one process-wide goroutine at the first Notify,
	// which never ends: start it before counting.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	signal.Stop(c)
	base := runtime.NumGoroutine()
	for _, args := range [][]string{
		{"--config", dir},
		{"--config-source", "xds", "--xds-server", cp.Addr()},
		{"--config-source", "xds", "--xds-server", freeAddr(t), "--force-start-without-config"},
	} {
		if err := runUntilServing(t, serveSettings(t, args...)); err != nil {
			t.Errorf("%v: Run = %v", args, err)
		}
		waitGoroutines(t, base)
	}
}

// TestRunRefusesBadFirstRules: without --force-start-without-config a
// refused first rule set fails Run with its problems.
func TestRunRefusesBadFirstRules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("domain: d\ndescriptors:\n  - key: \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), serveSettings(t, "--config", dir), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "descriptor key must not be empty") {
		t.Errorf("Run = %v, want the rules' problem", err)
	}
}
