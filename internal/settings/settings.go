// Package settings turns the command line and the environment into the
// configuration of `envoy-rls serve`. Every flag --some-name can also be
// set by the environment variable ENVOY_RLS_SOME_NAME; a flag given on the
// command line wins. Settings are read once at start and flow down as
// structs; nothing reads the environment later.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "ENVOY_RLS_"

// Serve is the configuration of `envoy-rls serve`.
type Serve struct {
	Config    string
	GRPCAddr  string
	HTTPAddr  string
	DebugAddr string
	LogLevel  string
	LogFormat string

	Store         string
	MemoryMaxKeys int
	KeyPrefix     string

	ShadowMode      bool
	ShutdownTimeout time.Duration

	MaxDescriptors int
	MaxEntries     int
	MaxValueBytes  int
}

// EnvName returns the environment variable that sets flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ServeFlags returns a FlagSet bound to s, with the defaults set in s.
func ServeFlags(s *Serve, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&s.Config, "config", "", "rules: a YAML file or a directory of *.yaml files (required)")
	fs.StringVar(&s.GRPCAddr, "grpc-addr", ":8081", "address of the gRPC RateLimitService and health service")
	fs.StringVar(&s.HTTPAddr, "http-addr", ":8080", "address of the HTTP endpoints (/healthcheck, /json, /rlconfig)")
	fs.StringVar(&s.DebugAddr, "debug-addr", "", "address of the debug endpoints (pprof, /rlconfig); empty disables them")
	fs.StringVar(&s.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&s.Store, "store", "memory", "where counters live: memory")
	fs.IntVar(&s.MemoryMaxKeys, "memory-max-keys", 1_000_000, "memory store: the most keys kept; beyond it the keys nearest expiry are evicted")
	fs.StringVar(&s.KeyPrefix, "key-prefix", "envoy-rls:", "prefix (namespace) of every store key")
	fs.BoolVar(&s.ShadowMode, "shadow-mode", false, "global shadow mode: count and report, but answer overall_code OK")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight calls may take to finish on SIGTERM")
	fs.IntVar(&s.MaxDescriptors, "max-descriptors", 64, "most descriptors per request; more is INVALID_ARGUMENT")
	fs.IntVar(&s.MaxEntries, "max-entries", 32, "most entries per descriptor; more is INVALID_ARGUMENT")
	fs.IntVar(&s.MaxValueBytes, "max-value-bytes", 4096, "longest descriptor key or value in bytes; longer is INVALID_ARGUMENT")
	return fs
}

// ParseServe parses args, then fills every flag not given on the command
// line from its environment variable (looked up with getenv), and
// validates the result, reporting every problem at once.
func ParseServe(args []string, getenv func(string) string, out io.Writer) (Serve, error) {
	var s Serve
	fs := ServeFlags(&s, out)
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("settings: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := applyEnv(fs, getenv); err != nil {
		return s, err
	}
	return s, s.Validate()
}

// applyEnv sets each flag not set on the command line from its
// environment variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("settings: %s=%q: %w", env, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Validate reports every invalid setting at once.
func (s Serve) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("settings: "+format, a...)) }
	if s.Config == "" {
		bad("--config is required (or %s)", EnvName("config"))
	}
	if s.GRPCAddr == "" {
		bad("--grpc-addr is empty")
	}
	if s.HTTPAddr == "" {
		bad("--http-addr is empty")
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level %q: want debug, info, warn or error", s.LogLevel)
	}
	switch s.LogFormat {
	case "json", "console":
	default:
		bad("--log-format %q: want json or console", s.LogFormat)
	}
	switch s.Store {
	case "memory":
	default:
		bad("--store %q: want memory", s.Store)
	}
	if s.MemoryMaxKeys <= 0 {
		bad("--memory-max-keys must be positive, got %d", s.MemoryMaxKeys)
	}
	if s.ShutdownTimeout <= 0 {
		bad("--shutdown-timeout must be positive, got %s", s.ShutdownTimeout)
	}
	if s.MaxDescriptors <= 0 || s.MaxEntries <= 0 || s.MaxValueBytes <= 0 {
		bad("--max-descriptors, --max-entries and --max-value-bytes must be positive")
	}
	return errors.Join(errs...)
}

// FlagNames returns the names of every serve flag, sorted; the docs test
// checks that each one is documented.
func FlagNames() []string {
	var s Serve
	var names []string
	ServeFlags(&s, io.Discard).VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}
