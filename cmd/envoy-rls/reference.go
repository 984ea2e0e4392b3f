package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/settings"
)

// referenceMode reports whether a process started as argv0 with args
// serves as envoyproxy/ratelimit does, configured by its environment:
// with no arguments at all, or as "ratelimit" with arguments that are not
// one of envoy-rls's commands (the reference takes no arguments).
func referenceMode(argv0 string, args []string) bool {
	if len(args) == 0 {
		return true
	}
	return strings.TrimSuffix(filepath.Base(argv0), ".exe") == settings.ReferenceCommand && !isCommand(args[0])
}

// isCommand reports whether a is one of the subcommands run dispatches;
// as "ratelimit" the binary still runs them, so `ratelimit version` works.
func isCommand(a string) bool {
	switch a {
	case "serve", "validate", "healthcheck", "version", "--version", "-version", "help", "-h", "--help":
		return true
	}
	return false
}

// serveReference serves with the settings read from the reference's
// environment variables (ENVOY_RLS_* ones win), naming in one warning
// every variable set that envoy-rls cannot honour.
func serveReference(argv0 string, args []string, stderr io.Writer) int {
	s, warnings, err := settings.ParseReference(os.Getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if len(args) > 0 {
		warnings = append(warnings, fmt.Sprintf("arguments %q: ignored, as the reference takes none", args))
	}
	return runServe(s, stderr, func(log *zap.Logger) {
		log.Info("configured by envoyproxy/ratelimit's environment variables (ENVOY_RLS_* win)",
			zap.String("command", argv0), zap.String("config_source", s.ConfigSource))
		if len(warnings) > 0 {
			log.Warn("envoyproxy/ratelimit variables that envoy-rls does not honour", zap.Strings("variables", warnings))
		}
	})
}
