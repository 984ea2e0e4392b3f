// Command envoy-rls is an external rate-limit service for Envoy and Istio.
//
//	envoy-rls serve --config PATH [flags]   serve RateLimitService v3
//	envoy-rls validate PATH...              check rule files
//	envoy-rls version                       print the version
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

	"github.com/envoy-rls/envoy-rls/internal/app"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  envoy-rls serve --config PATH [flags]   serve the RateLimitService (see: envoy-rls serve -h)
  envoy-rls validate PATH...              check rule files or directories
  envoy-rls version                       print the version
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
	log, err := app.NewLogger(s.LogLevel, s.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := app.Run(ctx, s, log.With()); err != nil {
		fmt.Fprintln(stderr, "envoy-rls:", err)
		return 1
	}
	return 0
}

func validate(paths []string, stdout, stderr io.Writer) int {
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "usage: envoy-rls validate PATH...")
		return 2
	}
	code := 0
	for _, p := range paths {
		cfg, err := descriptors.Load(p)
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid:\n%v\n", p, err)
			code = 1
			continue
		}
		for _, d := range cfg.Domains() {
			fmt.Fprintf(stdout, "%s: domain %q: %d rules ok\n", p, d.Name, d.Rules())
		}
	}
	return code
}
