package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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

// tailBuffer keeps the last max bytes written to it; it is safe for the
// concurrent writes of a process's stdout and stderr.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// process is a child process whose output is kept (its tail) for error
// reports.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
}

// startProcess starts bin with args; h stops it at Close.
func startProcess(h *harness, name, bin string, args ...string) (*process, error) {
	return startProcessEnv(h, name, nil, bin, args...)
}

// startProcessEnv is startProcess with env added to this process's
// environment.
func startProcessEnv(h *harness, name string, env []string, bin string, args ...string) (*process, error) {
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("rls-bench: start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait() // a stopped process's exit status is expected
		close(p.done)
	}()
	h.Cleanup(p.stop)
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to terminate (SIGTERM), kills it after 5 s, and
// waits for it.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// freeLoopback returns a loopback address whose port was free a moment
// ago.
func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("rls-bench: find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("rls-bench: find a free port: %w", err)
	}
	return addr, nil
}

// waitServing polls the gRPC health of the rate-limit service at addr
// until it is SERVING, p exits or timeout passes.
func waitServing(ctx context.Context, addr string, p *process, timeout time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("rls-bench: dial %s: %w", addr, err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: rlsServiceName})
		cancel()
		if err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("rls-bench: %s exited before serving:\n%s", p.name, p.out.String())
		}
		if ctx.Err() != nil {
			return fmt.Errorf("rls-bench: waiting for %s: %w", addr, ctx.Err())
		}
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				out = p.out.String()
			}
			return fmt.Errorf("rls-bench: %s not SERVING after %s (last: %v, %v)\n%s", addr, timeout, r, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rlsProcess is a running `envoy-rls serve`.
type rlsProcess struct {
	*process
	GRPCAddr, HTTPAddr, DebugAddr string
}

// startEnvoyRLS runs `bin serve --config rules` with extra flags on free
// loopback ports (gRPC, HTTP, debug) and waits until it is SERVING.
func startEnvoyRLS(ctx context.Context, h *harness, bin, rules string, extra ...string) (*rlsProcess, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := freeLoopback()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	args := append([]string{"serve", "--config", rules, "--grpc-addr", addrs[0], "--http-addr", addrs[1],
		"--debug-addr", addrs[2], "--log-level", "warn"}, extra...)
	p, err := startProcess(h, "envoy-rls", bin, args...)
	if err != nil {
		return nil, err
	}
	r := &rlsProcess{process: p, GRPCAddr: addrs[0], HTTPAddr: addrs[1], DebugAddr: addrs[2]}
	if err := waitServing(ctx, r.GRPCAddr, p, 20*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return r, nil
}

// startNoop runs this program's `noop` command as a child process (a
// process of its own, as envoy-rls is) and waits until it serves.
func startNoop(ctx context.Context, h *harness) (*process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("rls-bench: own executable: %w", err)
	}
	addr, err := freeLoopback()
	if err != nil {
		return nil, "", err
	}
	p, err := startProcess(h, "rls-bench noop", self, "noop", "-addr", addr)
	if err != nil {
		return nil, "", err
	}
	if err := waitServing(ctx, addr, p, 10*time.Second); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

// pid returns the process's id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// buildEnvoyRLS builds ./cmd/envoy-rls of the module in the working
// directory (as `make build` does) into dir and returns the binary.
func buildEnvoyRLS(ctx context.Context, dir string, log io.Writer) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "envoy-rls")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags=vtprotobuf", "-o", bin, "./cmd/envoy-rls")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("rls-bench: go build ./cmd/envoy-rls: %w", err)
	}
	return bin, nil
}

// moduleRoot returns the root directory of the module in the working
// directory.
func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("rls-bench: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("rls-bench: not inside the envoy-rls module: run from the repository")
	}
	return root, nil
}

// startMemcached starts a memcached on a free loopback port with memSize
// MB of item memory (testservers.MemcachedWith, as the tests start theirs)
// and returns its address and process id once it answers; h stops it, and a memcached
// that cannot start fails h.
func startMemcached(h *harness, memSize int) (string, int, error) {
	s := testservers.MemcachedWith(h, testservers.MemcachedOptions{MemoryMB: memSize, Connections: 4096})
	return s.Addr, s.Pid(), nil
}

// scrapeMetrics reads the Prometheus text exposition at url into a map
// from series (name and labels) to value.
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	body, err := httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	return parseMetrics(body)
}

// parseMetrics parses the Prometheus text format: one "series value"
// line per sample, comments skipped.
func parseMetrics(body []byte) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("rls-bench: metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("rls-bench: metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("rls-bench: GET %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rls-bench: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("rls-bench: GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rls-bench: GET %s: status %d", url, resp.StatusCode)
	}
	return b, nil
}
