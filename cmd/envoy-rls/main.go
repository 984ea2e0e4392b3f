// Command envoy-rls is an external rate-limit service for Envoy and Istio.
//
//	envoy-rls serve --config PATH [flags]   serve RateLimitService v3
//	envoy-rls validate [--config-max-bytes N] PATH...  check rule files
//	envoy-rls healthcheck [--addr HOST:PORT] probe the gRPC health service
//	envoy-rls version                       print the version
//
// Started with no arguments, or as "ratelimit" (Envoy Gateway runs
// /bin/ratelimit), it serves as configured by envoyproxy/ratelimit's
// environment variables instead (see reference.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/envoy-rls/envoy-rls/internal/app"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if referenceMode(os.Args[0], os.Args[1:]) {
		os.Exit(serveReference(os.Args[0], os.Args[1:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  envoy-rls serve --config PATH [flags]   serve the RateLimitService (see: envoy-rls serve -h)
  envoy-rls validate [--config-max-bytes N] PATH...  check rule files or directories
  envoy-rls healthcheck [--addr HOST:PORT] exit 0 when the gRPC health service says SERVING
  envoy-rls version                       print the version
  envoy-rls (no arguments), or as ratelimit  serve configured by envoyproxy/ratelimit's
                                          environment variables (docs/migration.md)
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "envoy-rls", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "envoy-rls: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

func serve(args []string, stderr io.Writer) int {
	s, err := settings.ParseServe(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	return runServe(s, stderr, nil)
}

// runServe serves with s until SIGTERM or SIGINT. announce, when set,
// logs what the chosen configuration needs said first.
func runServe(s settings.Serve, stderr io.Writer, announce func(*zap.Logger)) int {
	log, err := app.NewLogger(s.LogLevel, s.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if announce != nil {
		announce(log)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := app.Run(ctx, s, log.With()); err != nil {
		fmt.Fprintln(stderr, "envoy-rls:", err)
		return 1
	}
	return 0
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxBytes := fs.Int64("config-max-bytes", settings.DefaultConfigMaxBytes, "largest config in bytes, all files of a directory together (as serve's flag)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	paths := fs.Args()
	if len(paths) == 0 || *maxBytes <= 0 {
		fmt.Fprintln(stderr, "usage: envoy-rls validate [--config-max-bytes N] PATH...")
		return 2
	}
	code := 0
	for _, p := range paths {
		cfg, err := descriptors.LoadLimits(p, descriptors.Limits{MaxBytes: *maxBytes})
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid:\n%v\n", p, err)
			code = 1
			continue
		}
		for _, d := range cfg.Domains() {
			fmt.Fprintf(stdout, "%s: domain %q: %d rules ok\n", p, d.Name, len(d.Rules()))
		}
	}
	return code
}

// healthcheck probes the gRPC health service, for container health checks
// in an image without a shell.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "gRPC address to probe")
	service := fs.String("service", "", "service name to check (empty: the server as a whole)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	fmt.Fprintln(stdout, r.Status)
	if r.Status != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}
