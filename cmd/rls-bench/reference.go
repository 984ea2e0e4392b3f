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
	root, err := moduleRoot(ctx)
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
	*process
	GRPCAddr string
}

// startReference runs the reference at bin with env (its store's
// variables) on free loopback ports, its rules written under dir, and
// waits until it answers a request with a limit (its rules are loaded).
func startReference(ctx context.Context, h *harness, bin, dir string, env []string) (*refProcess, error) {
	root := filepath.Join(dir, "reference-runtime")
	conf := filepath.Join(root, "ratelimit", "config")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(conf, "bench.yaml"), []byte(referenceRules), 0o600); err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	var ports [3]string
	for i := range ports {
		a, err := freeLoopback()
		if err != nil {
			return nil, err
		}
		_, ports[i], _ = net.SplitHostPort(a)
	}
	all := append([]string{
		"RUNTIME_ROOT=" + root, "RUNTIME_SUBDIRECTORY=ratelimit", "RUNTIME_WATCH_ROOT=false", "RUNTIME_IGNOREDOTFILES=true",
		"USE_STATSD=false", "LOG_LEVEL=warn",
		"HOST=127.0.0.1", "PORT=" + ports[0], "GRPC_HOST=127.0.0.1", "GRPC_PORT=" + ports[1],
		"DEBUG_HOST=127.0.0.1", "DEBUG_PORT=" + ports[2],
	}, env...)
	p, err := startProcessEnv(h, "envoyproxy/ratelimit", all, bin)
	if err != nil {
		return nil, err
	}
	r := &refProcess{process: p, GRPCAddr: net.JoinHostPort("127.0.0.1", ports[1])}
	if err := waitLimited(ctx, r.GRPCAddr, p, 30*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return r, nil
}

// waitLimited sends a fixed_window request to the service at addr until
// the answer carries a limit, p exits or timeout passes.
func waitLimited(ctx context.Context, addr string, p *process, timeout time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("rls-bench: dial %s: %w", addr, err)
	}
	defer conn.Close()
	c := rlsv3.NewRateLimitServiceClient(conn)
	req := &rlsv3.RateLimitRequest{Domain: benchDomain, Descriptors: []*rlcommon.RateLimitDescriptor{{
		Entries: []*rlcommon.RateLimitDescriptor_Entry{{Key: "fixed_window_0", Value: "rls-bench-probe"}},
	}}}
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.ShouldRateLimit(cctx, req)
		cancel()
		if err == nil && len(resp.Statuses) == 1 && resp.Statuses[0].CurrentLimit != nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("rls-bench: %s exited before serving:\n%s", p.name, p.out.String())
		}
		if ctx.Err() != nil {
			return fmt.Errorf("rls-bench: waiting for %s: %w", addr, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rls-bench: %s gives no limit after %s (last: %v, %v)\n%s", addr, timeout, resp, err, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
