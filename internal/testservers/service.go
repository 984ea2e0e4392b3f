package testservers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// RateLimitServiceName is the gRPC service name of the rate-limit
// service, which its health checks ask about.
const RateLimitServiceName = "envoy.service.ratelimit.v3.RateLimitService"

// BuildOptions describe a build of the service binary for BuildService.
type BuildOptions struct {
	// Dir is the directory the binary "envoy-rls" is written to.
	Dir string
	// Release builds with the Dockerfile's go build flags
	// (CGO_ENABLED=0, -trimpath, -tags=vtprotobuf), as benchmarks measure
	// the binary that ships; otherwise it is a plain go build, as tests
	// use.
	Release bool
	// Log receives the go command's output (default os.Stderr).
	Log io.Writer
}

// BuildService builds ./cmd/envoy-rls of the module in the working
// directory and returns the binary's path.
func BuildService(ctx context.Context, o BuildOptions) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	bin := filepath.Join(o.Dir, "envoy-rls")
	args := []string{"build", "-o", bin, "./cmd/envoy-rls"}
	if o.Release {
		args = []string{"build", "-trimpath", "-tags=vtprotobuf", "-o", bin, "./cmd/envoy-rls"}
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if o.Release {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testservers: go build ./cmd/envoy-rls: %w", err)
	}
	return bin, nil
}

// ModuleRoot returns the root directory of the module in the working
// directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testservers: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("testservers: not inside the envoy-rls module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

// RunWithService is the TestMain of a package that tests the built
// envoy-rls binary: it builds ./cmd/envoy-rls into a temporary directory,
// sets *binary to its path, runs the tests and removes the directory. It
// returns the exit code for os.Exit; a failed build fails every test.
func RunWithService(m *testing.M, binary *string) int {
	dir, err := os.MkdirTemp("", "envoy-rls-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *binary, err = BuildService(context.Background(), BuildOptions{Dir: dir}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// ServeOptions describe an `envoy-rls serve` process for StartServe.
// Binary is required; the zero value of every other field is its
// default.
type ServeOptions struct {
	// Binary is the envoy-rls binary.
	Binary string
	// Args follow `serve --grpc-addr A --http-addr B --debug-addr C`;
	// a flag repeated here wins over those.
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Debug gives the debug listener a free port too; without it,
	// --debug-addr is "" (no debug listener).
	Debug bool
	// Creds are the transport credentials the health check dials with
	// (default plain text).
	Creds credentials.TransportCredentials
	// NoWait returns as soon as the process runs, without waiting for
	// its health to be SERVING (for a service whose store is down).
	NoWait bool
	// StartTimeout, StopGrace and OutputLimit are ProcessOptions'.
	StartTimeout time.Duration
	StopGrace    time.Duration
	OutputLimit  int
}

// Service is a running `envoy-rls serve` and its addresses.
type Service struct {
	*Process
	// GRPCAddr, HTTPAddr and DebugAddr are "127.0.0.1:port"; DebugAddr
	// is empty without ServeOptions.Debug.
	GRPCAddr, HTTPAddr, DebugAddr string
}

// StartServe runs `envoy-rls serve` on free loopback ports and waits
// until its gRPC health reports the rate-limit service SERVING (see
// StartOnFreePorts). The caller owns the returned Service and must Stop
// it.
func StartServe(ctx context.Context, o ServeOptions) (*Service, error) {
	n := 2
	if o.Debug {
		n = 3
	}
	p, addrs, err := StartOnFreePorts(ctx, n, func(addrs []string) ProcessOptions {
		debug := ""
		if o.Debug {
			debug = addrs[2]
		}
		po := ProcessOptions{
			Name:         "envoy-rls",
			Binary:       o.Binary,
			Args:         append([]string{"serve", "--grpc-addr", addrs[0], "--http-addr", addrs[1], "--debug-addr", debug}, o.Args...),
			Env:          o.Env,
			StartTimeout: o.StartTimeout,
			StopGrace:    o.StopGrace,
			OutputLimit:  o.OutputLimit,
		}
		if !o.NoWait {
			po.Ready = GRPCServing(addrs[0], o.Creds, RateLimitServiceName)
		}
		return po
	})
	if err != nil {
		return nil, err
	}
	s := &Service{Process: p, GRPCAddr: addrs[0], HTTPAddr: addrs[1]}
	if o.Debug {
		s.DebugAddr = addrs[2]
	}
	return s, nil
}

// Serve is StartServe for a test or another Harness: a failed start fails
// h, and when h is done the service is stopped and, if h is a test that
// failed, its output is logged.
func Serve(h Harness, o ServeOptions) *Service {
	h.Helper()
	s, err := StartServe(context.Background(), o)
	if err != nil {
		h.Fatalf("%v", err)
	}
	own(h, s.Process)
	return s
}

// GRPCServing returns a probe (for ProcessOptions.Ready or WaitFor)
// that reports nil when the gRPC health service at addr, dialled with
// creds (nil: plain text), reports service SERVING.
func GRPCServing(addr string, creds credentials.TransportCredentials, service string) func(ctx context.Context) error {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return func(ctx context.Context) error {
		// A new connection each time: a connection's reconnect backoff
		// would slow down the first answer after the server starts.
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return fmt.Errorf("health of %s: %w", addr, err)
		}
		if r.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health of %s: %v", addr, r.Status)
		}
		return nil
	}
}

// HTTPOK returns a probe that reports nil when GET url answers 200
// within a second, as a Kubernetes probe with a 1 s timeout asks.
func HTTPOK(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := GetOK(cctx, url)
		return err
	}
}

// GetOK returns the body of a 200 answer to GET url, or an error for any
// other answer.
func GetOK(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("testservers: GET %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testservers: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("testservers: GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("testservers: GET %s: status %d", url, resp.StatusCode)
	}
	return b, nil
}

// Metrics reads the Prometheus text at http://httpAddr/metrics and
// returns each sample's value by its series (full name with labels).
func Metrics(ctx context.Context, httpAddr string) (map[string]float64, error) {
	body, err := GetOK(ctx, "http://"+httpAddr+"/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(body)
}

// ParseMetrics parses the Prometheus text format: one "series value"
// line per sample; comments and empty lines are skipped.
func ParseMetrics(body []byte) (map[string]float64, error) {
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
			return nil, fmt.Errorf("testservers: metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("testservers: metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testservers: reading metrics: %w", err)
	}
	return out, nil
}

// ScrapeMetrics is Metrics for a test: an error fails t.
func ScrapeMetrics(t testing.TB, httpAddr string) map[string]float64 {
	t.Helper()
	m, err := Metrics(context.Background(), httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
