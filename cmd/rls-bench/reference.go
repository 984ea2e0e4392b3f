package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// The reference is envoyproxy/ratelimit, run as the matrix's peer: the
// same load on the same store in the same run. It has fixed windows only,
// so it serves the fixed_window cells.

// referenceStrategy is the only strategy the reference has.
const referenceStrategy = "fixed_window"

// referenceRules are benchRules' fixed_window rules in the reference's
// own format (unit and requests_per_unit).
const referenceRules = `# Written by rls-bench matrix: the fixed_window rules of envoy-rls's
# rules file, for envoyproxy/ratelimit.
domain: bench
descriptors:
  - {key: fixed_window_0, rate_limit: {unit: day, requests_per_unit: 1000000000}}
  - {key: fixed_window_1, rate_limit: {unit: day, requests_per_unit: 1000000000}}
  - {key: fixed_window_2, rate_limit: {unit: day, requests_per_unit: 1000000000}}
`

// ensureReferenceScript installs the reference when missing and prints
// its path; it pins the reference's version.
const ensureReferenceScript = "bench/ensure-ratelimit.sh"

// ensureReference returns the reference's binary: bin when set, else
// what bench/ensure-ratelimit.sh (run from the module's root) prints,
// installing it with `go install` the first time.
func ensureReference(ctx context.Context, bin string, log io.Writer) (string, error) {
	if bin != "" {
		return bin, nil
	}
	root, err := testservers.ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, ensureReferenceScript))
	cmd.Dir, cmd.Stderr = root, log
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("rls-bench: %s: %w", ensureReferenceScript, err)
	}
	path := strings.TrimSpace(string(out))
	if path == "" {
		return "", fmt.Errorf("rls-bench: %s printed no path", ensureReferenceScript)
	}
	return path, nil
}

// refProcess is a running envoyproxy/ratelimit.
type refProcess struct {
	*testservers.Process
	GRPCAddr string
}

// startReference runs the reference at bin with env (its store's
// variables) on free loopback ports, its rules written under dir, and
// waits until it answers a request with a limit (its rules are loaded);
// h stops it at Close.
func startReference(ctx context.Context, h *harness, bin, dir string, env []string) (*refProcess, error) {
	root := filepath.Join(dir, "reference-runtime")
	conf := filepath.Join(root, "ratelimit", "config")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(conf, "bench.yaml"), []byte(referenceRules), 0o600); err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	p, addrs, err := startOwned(ctx, h, 3, func(addrs []string) testservers.ProcessOptions {
		port := func(i int) string { _, p, _ := net.SplitHostPort(addrs[i]); return p }
		return testservers.ProcessOptions{
			Name:   "envoyproxy/ratelimit",
			Binary: bin,
			Env: append([]string{
				"RUNTIME_ROOT=" + root, "RUNTIME_SUBDIRECTORY=ratelimit", "RUNTIME_WATCH_ROOT=false", "RUNTIME_IGNOREDOTFILES=true",
				"USE_STATSD=false", "LOG_LEVEL=warn",
				"HOST=127.0.0.1", "PORT=" + port(0), "GRPC_HOST=127.0.0.1", "GRPC_PORT=" + port(1),
				"DEBUG_HOST=127.0.0.1", "DEBUG_PORT=" + port(2),
			}, env...),
			Ready:        limited(addrs[1]),
			StartTimeout: 30 * time.Second,
		}
	})
	if err != nil {
		return nil, err
	}
	return &refProcess{Process: p, GRPCAddr: addrs[1]}, nil
}

// limited returns a probe that reports nil when a fixed_window request
// to the service at addr gets an answer with a limit.
func limited(addr string) func(ctx context.Context) error {
	req := &rlsv3.RateLimitRequest{Domain: benchDomain, Descriptors: []*rlcommon.RateLimitDescriptor{{
		Entries: []*rlcommon.RateLimitDescriptor_Entry{{Key: "fixed_window_0", Value: "rls-bench-probe"}},
	}}}
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(cctx, req)
		if err != nil {
			return err
		}
		if len(resp.Statuses) != 1 || resp.Statuses[0].CurrentLimit == nil {
			return fmt.Errorf("%s gives no limit: %v", addr, resp)
		}
		return nil
	}
}
