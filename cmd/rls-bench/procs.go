package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// harness owns what a matrix starts: processes and temporary
// directories, released last-first by Close. It satisfies
// testservers.Harness: Fatalf reports, releases everything (its parents'
// resources too) and exits with status 1, as the matrix cannot go on
// without a store. A harness is safe for concurrent use.
type harness struct {
	parent *harness
	log    io.Writer

	mu       sync.Mutex
	cleanups []func()
}

// newHarness returns a root harness that reports to log.
func newHarness(log io.Writer) *harness { return &harness{log: log} }

// child returns a harness whose resources can be released on their own
// (one store's servers) and whose Fatalf releases h's too.
func (h *harness) child() *harness { return &harness{parent: h, log: h.log} }

// Helper does nothing; it is part of testservers.Harness.
func (h *harness) Helper() {}

// Cleanup registers f to run at Close.
func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

// Close runs the registered functions, last added first.
func (h *harness) Close() {
	h.mu.Lock()
	fs := h.cleanups
	h.cleanups = nil
	h.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// Fatalf reports, releases everything and exits with status 1.
func (h *harness) Fatalf(format string, args ...any) {
	fmt.Fprintf(h.log, "rls-bench: "+format+"\n", args...)
	for x := h; x != nil; x = x.parent {
		x.Close()
	}
	os.Exit(1)
}

// The processes of a matrix (envoy-rls, the no-op server, the
// reference) are testservers.Processes: their output's tail (benchOutput
// bytes) goes into error reports, and Close stops them with SIGTERM,
// killing them after benchStopGrace.
const (
	benchOutput    = 16 << 10
	benchStopGrace = 5 * time.Second
)

// startOwned starts a process on n free loopback ports (see
// testservers.StartOnFreePorts) that h stops at Close.
func startOwned(ctx context.Context, h *harness, n int, build func(addrs []string) testservers.ProcessOptions) (*testservers.Process, []string, error) {
	p, addrs, err := testservers.StartOnFreePorts(ctx, n, func(addrs []string) testservers.ProcessOptions {
		o := build(addrs)
		o.StopGrace, o.OutputLimit = benchStopGrace, benchOutput
		return o
	})
	if err != nil {
		return nil, nil, fmt.Errorf("rls-bench: %w", err)
	}
	h.Cleanup(func() { _ = p.Stop() })
	return p, addrs, nil
}

// startEnvoyRLS runs `bin serve --config rules` with extra flags and env
// added to its environment on free loopback ports (gRPC, HTTP, debug)
// and waits until it is SERVING; h stops it at Close.
func startEnvoyRLS(ctx context.Context, h *harness, bin, rules string, env []string, extra ...string) (*testservers.Service, error) {
	s, err := testservers.StartServe(ctx, testservers.ServeOptions{
		Binary:       bin,
		Args:         append([]string{"--config", rules, "--log-level", "warn"}, extra...),
		Env:          env,
		Debug:        true,
		StartTimeout: 20 * time.Second,
		StopGrace:    benchStopGrace,
		OutputLimit:  benchOutput,
	})
	if err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	h.Cleanup(func() { _ = s.Stop() })
	return s, nil
}

// startNoop runs this program's `noop` command as a child process (a
// process of its own, as envoy-rls is) and waits until it serves; h stops
// it at Close. env is added to its environment. It returns the process
// and its address.
func startNoop(ctx context.Context, h *harness, env []string) (*testservers.Process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("rls-bench: own executable: %w", err)
	}
	p, addrs, err := startOwned(ctx, h, 1, func(addrs []string) testservers.ProcessOptions {
		return testservers.ProcessOptions{
			Name:         "rls-bench noop",
			Binary:       self,
			Args:         []string{"noop", "-addr", addrs[0]},
			Env:          env,
			Ready:        testservers.GRPCServing(addrs[0], nil, rlsServiceName),
			StartTimeout: 10 * time.Second,
		}
	})
	if err != nil {
		return nil, "", err
	}
	return p, addrs[0], nil
}

// buildEnvoyRLS builds ./cmd/envoy-rls of the module in the working
// directory into dir with the Dockerfile's flags and returns the binary.
func buildEnvoyRLS(ctx context.Context, dir string, log io.Writer) (string, error) {
	return testservers.BuildService(ctx, testservers.BuildOptions{Dir: dir, Release: true, Log: log})
}
