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
	"slices"
	"strings"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/server"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "ENVOY_RLS_"

// Store names, the values of --store. The app builds one store per name
// (internal/app), and the Helm chart's values.schema.json lists the same
// names (a test checks it).
const (
	StoreMemory    = "memory"
	StoreRedis     = "redis"
	StoreMemcached = "memcached"
)

// StoreNames returns every store name, the default first.
func StoreNames() []string { return []string{StoreMemory, StoreRedis, StoreMemcached} }

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// DefaultGCHeapFloor is the default of --gc-heap-floor (32 MiB): under
// load on the Redis store it saves about a tenth of the service's CPU per
// request, for some 25–30 MB more resident memory (bench/notes.md).
const DefaultGCHeapFloor = 32 << 20

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
	GCHeapFloor   int64
	KeyPrefix     string
	StoreTimeout  time.Duration
	FailureMode   string

	RedisURL           string
	RedisMode          string
	RedisAddrs         string
	RedisMaster        string
	RedisUsername      string
	RedisPassword      string
	RedisDB            int
	RedisTLSCA         string
	RedisTLSCert       string
	RedisTLSKey        string
	RedisTLSServerName string
	RedisPoolSize      int
	RedisServerTime    bool
	RedisPipelines     int
	RedisMaxBatch      int
	RedisBatchWindow   time.Duration

	MemcachedServers string

	ShadowMode      bool
	NearLimitRatio  float64
	ResponseHeaders bool
	HeaderLimit     string
	HeaderRemaining string
	HeaderReset     string
	HeaderRetry     string
	OverLimitBody   string
	DynamicMetadata bool
	LocalCacheSize  int

	GRPCTLSCert      string
	GRPCTLSKey       string
	GRPCTLSClientCA  string
	GRPCMaxConnAge   time.Duration
	GRPCKeepalive    time.Duration
	GRPCMaxRecvBytes int
	GRPCReflection   bool

	ShutdownTimeout time.Duration

	MaxDescriptors int
	MaxEntries     int
	MaxValueBytes  int

	// Resil: deadline margin, store admission, breaker (resil.go).
	Resil Resilience

	// ConfigSource is where the rules come from: "file" (Config) or
	// "xds" (XDS). ForceStartWithoutConfig serves with no rules until the
	// first good config arrives instead of failing at start.
	ConfigSource            string
	XDS                     XDS
	ForceStartWithoutConfig bool
	MergeDomainConfig       bool

	// MetricsAddr, when set, serves MetricsPath on a listener of its own
	// (Envoy Gateway's PROMETHEUS_ADDR); /metrics on HTTPAddr stays.
	// ReferenceMetrics adds envoyproxy/ratelimit's metric names.
	MetricsAddr      string
	MetricsPath      string
	ReferenceMetrics bool

	// Input bounds config loads, gRPC streams and HTTP clients (input.go).
	Input Input
	// conform: QuotaMetadata adds envoy-rls's quota-mode summary to the
	// response's dynamic_metadata under a key of its own.
	QuotaMetadata bool
	// refenv: tracing, and the reference's settings that had no flag yet
	// (flags in refenvFlags, reference.go holds the reference's variables).
	Tracing             Tracing
	GRPCMaxConnAgeGrace time.Duration
	RedisTLS            bool
	HealthFollowsStore  bool
}

// XDS is the xDS config source: a State-of-the-World ADS stream of
// RateLimitConfig resources, as Envoy Gateway serves them.
type XDS struct {
	Server         string // host:port of the control plane
	NodeID         string
	NodeMetadata   string // JSON object, sent as the node's metadata
	Headers        string // comma-separated key=value gRPC metadata sent on the stream
	TLS            bool
	TLSCA          string
	TLSCert        string
	TLSKey         string
	TLSServerName  string
	BackoffInitial time.Duration
	BackoffMax     time.Duration
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
	fs.StringVar(&s.HTTPAddr, "http-addr", ":8080", "address of the HTTP endpoints (/healthcheck, /livez, /json, /rlconfig, /metrics)")
	fs.StringVar(&s.DebugAddr, "debug-addr", "127.0.0.1:6070", "address of the debug endpoints (pprof, /rlconfig); empty disables them")
	fs.StringVar(&s.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&s.Store, "store", StoreMemory, "where counters live: "+orList(StoreNames()))
	fs.IntVar(&s.MemoryMaxKeys, "memory-max-keys", 1_000_000, "memory store: the most keys kept; beyond it the keys nearest expiry are evicted")
	fs.Int64Var(&s.GCHeapFloor, "gc-heap-floor", DefaultGCHeapFloor, "bytes the heap may grow to before Go's garbage collector runs, while less than half of it is live (a larger live heap is collected at GOGC=100 as usual); 0 keeps Go's default; GOGC in the environment turns it off; capped at a quarter of the container's memory limit")
	fs.StringVar(&s.KeyPrefix, "key-prefix", "envoy-rls:", "prefix (namespace) of every store key")
	fs.DurationVar(&s.StoreTimeout, "store-timeout", 250*time.Millisecond, "the longest a store call may take before the failure mode answers; a shorter gRPC deadline from Envoy (minus --deadline-margin) wins (see docs/troubleshooting.md for how the default was chosen)")
	fs.StringVar(&s.FailureMode, "failure-mode", "error", "when the store fails: error (gRPC UNAVAILABLE; Envoy's failure_mode_deny decides), allow (OK) or deny (OVER_LIMIT)")

	fs.StringVar(&s.RedisURL, "redis-url", "redis://127.0.0.1:6379", "redis: server URL (redis:// or rediss:// for TLS; user, password and db may be in it)")
	fs.StringVar(&s.RedisMode, "redis-mode", "single", "redis: single, sentinel or cluster")
	fs.StringVar(&s.RedisAddrs, "redis-addrs", "", "redis: comma-separated cluster nodes or sentinels")
	fs.StringVar(&s.RedisMaster, "redis-master", "", "redis sentinel: the master's name")
	fs.StringVar(&s.RedisUsername, "redis-username", "", "redis: ACL user (overrides the URL's)")
	fs.StringVar(&s.RedisPassword, "redis-password", "", "redis: password (overrides the URL's; prefer the environment variable)")
	fs.IntVar(&s.RedisDB, "redis-db", 0, "redis: database number (0: the URL's)")
	fs.StringVar(&s.RedisTLSCA, "redis-tls-ca", "", "redis: CA file to verify the server (turns TLS on)")
	fs.StringVar(&s.RedisTLSCert, "redis-tls-cert", "", "redis: client certificate file")
	fs.StringVar(&s.RedisTLSKey, "redis-tls-key", "", "redis: client key file")
	fs.StringVar(&s.RedisTLSServerName, "redis-tls-server-name", "", "redis: server name to verify")
	fs.IntVar(&s.RedisPoolSize, "redis-pool-size", 0, "redis: connections per node (0: go-redis's default)")
	fs.BoolVar(&s.RedisServerTime, "redis-server-time", true, "redis: take the time from Redis (TIME) so replicas with skewed clocks agree; false uses this replica's clock")
	fs.IntVar(&s.RedisPipelines, "redis-pipelines", 2, "redis: most batches of requests in flight at once, each on its own connection (per master in a cluster); under heavy load one is sent at a time (larger batches, less CPU), and the others only while a batch has waited over 4 round trips (at least 1ms) for its answer, so that a stalled connection holds only its own requests; 1: a stalled connection holds every request")
	fs.IntVar(&s.RedisMaxBatch, "redis-max-batch", 128, "redis: most requests sent in one pipeline; 1 turns cross-request batching off")
	fs.DurationVar(&s.RedisBatchWindow, "redis-batch-window", 0, "redis: how long to wait for more requests before sending a batch (0: send at once when idle, batch while busy)")
	fs.StringVar(&s.MemcachedServers, "memcached-servers", "", "memcached: comma-separated host:port list (client-side hashing)")

	fs.BoolVar(&s.ShadowMode, "shadow-mode", false, "global shadow mode: count and report, but answer overall_code OK")
	fs.Float64Var(&s.NearLimitRatio, "near-limit-ratio", 0.8, "metrics: an allowed request counts as near the limit once this share of it is used")
	fs.BoolVar(&s.ResponseHeaders, "response-headers", false, "add RateLimit-Limit/-Remaining/-Reset (tightest descriptor) and Retry-After (on OVER_LIMIT) to responses")
	fs.StringVar(&s.HeaderLimit, "header-limit", "RateLimit-Limit", "name of the limit header")
	fs.StringVar(&s.HeaderRemaining, "header-remaining", "RateLimit-Remaining", "name of the remaining header")
	fs.StringVar(&s.HeaderReset, "header-reset", "RateLimit-Reset", "name of the reset header")
	fs.StringVar(&s.HeaderRetry, "header-retry-after", "Retry-After", "name of the retry-after header")
	fs.StringVar(&s.OverLimitBody, "over-limit-body", "", "raw_body of OVER_LIMIT responses (the body of Envoy's 429), e.g. a JSON error")
	fs.BoolVar(&s.DynamicMetadata, "response-dynamic-metadata", false, "set the response's dynamic_metadata as the reference does: domain, descriptors, hitsAddend and the passed rules' metadata")
	fs.IntVar(&s.LocalCacheSize, "local-cache-size", 0, "keys known to be over their limit answered locally until their reset, without a store round trip (0: off)")

	fs.StringVar(&s.GRPCTLSCert, "grpc-tls-cert", "", "gRPC: server certificate file (turns TLS on; reloaded when it changes)")
	fs.StringVar(&s.GRPCTLSKey, "grpc-tls-key", "", "gRPC: server key file")
	fs.StringVar(&s.GRPCTLSClientCA, "grpc-tls-client-ca", "", "gRPC: CA file for client certificates (turns mutual TLS on)")
	fs.DurationVar(&s.GRPCMaxConnAge, "grpc-max-connection-age", 5*time.Minute, "gRPC: close connections after this age so Envoy rebalances across replicas (0: never)")
	fs.DurationVar(&s.GRPCKeepalive, "grpc-keepalive-time", 30*time.Second, "gRPC: ping an idle connection after this long")
	fs.BoolVar(&s.GRPCReflection, "grpc-reflection", true, "gRPC: serve the reflection service, so that grpcurl needs no proto files")
	fs.IntVar(&s.GRPCMaxRecvBytes, "grpc-max-recv-bytes", 1<<20, "largest request in bytes (domain, keys and values); larger is INVALID_ARGUMENT")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight calls may take to finish on SIGTERM")
	fs.IntVar(&s.MaxDescriptors, "max-descriptors", 64, "most descriptors per request; more is INVALID_ARGUMENT")
	fs.IntVar(&s.MaxEntries, "max-entries", 32, "most entries per descriptor; more is INVALID_ARGUMENT")
	fs.IntVar(&s.MaxValueBytes, "max-value-bytes", 4096, "longest descriptor key or value in bytes; longer is INVALID_ARGUMENT")

	fs.StringVar(&s.ConfigSource, "config-source", "file", "where the rules come from: file (--config) or xds (--xds-server)")
	fs.BoolVar(&s.ForceStartWithoutConfig, "force-start-without-config", false, "serve with no rules (every descriptor OK) until the first good config arrives, instead of failing at start")
	fs.BoolVar(&s.MergeDomainConfig, "merge-domain-config", false, "files that share a domain are merged into one domain instead of refused")
	fs.StringVar(&s.XDS.Server, "xds-server", "", "xds: control plane address host:port (ADS, State of the World)")
	fs.StringVar(&s.XDS.NodeID, "xds-node-id", "envoy-ratelimit", "xds: node id sent to the control plane")
	fs.StringVar(&s.XDS.NodeMetadata, "xds-node-metadata", "", "xds: node metadata as a JSON object")
	fs.StringVar(&s.XDS.Headers, "xds-headers", "", "xds: comma-separated key=value gRPC metadata sent on the stream")
	fs.BoolVar(&s.XDS.TLS, "xds-tls", false, "xds: connect with TLS (the system roots, or --xds-tls-ca)")
	fs.StringVar(&s.XDS.TLSCA, "xds-tls-ca", "", "xds: CA file to verify the control plane (turns TLS on)")
	fs.StringVar(&s.XDS.TLSCert, "xds-tls-cert", "", "xds: client certificate file (mutual TLS)")
	fs.StringVar(&s.XDS.TLSKey, "xds-tls-key", "", "xds: client key file")
	fs.StringVar(&s.XDS.TLSServerName, "xds-tls-server-name", "", "xds: server name to verify")
	fs.DurationVar(&s.XDS.BackoffInitial, "xds-backoff-initial", time.Second, "xds: first wait before redialling the control plane (doubles, with jitter)")
	fs.DurationVar(&s.XDS.BackoffMax, "xds-backoff-max", 30*time.Second, "xds: longest wait between redials")
	fs.StringVar(&s.MetricsAddr, "metrics-addr", "", "serve metrics on a listener of its own at this address too (empty: only on --http-addr)")
	fs.StringVar(&s.MetricsPath, "metrics-path", "/metrics", "path of the metrics on --metrics-addr")
	fs.BoolVar(&s.ReferenceMetrics, "reference-metrics", false, "also export envoyproxy/ratelimit's metric names (ratelimit_service_*), as Envoy Gateway's dashboards query them")
	inputFlags(fs, &s.Input) // input.go
	resilienceFlags(fs, &s.Resil)
	// conform: dynamic-metadata extension.
	fs.BoolVar(&s.QuotaMetadata, "response-quota-metadata", false, "add the quota-mode summary (quotaModeEnabled, quotaModeViolations) to the response's dynamic_metadata under the key envoy_rls_quota")
	refenvFlags(fs, s)
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
	envErr := applyEnv(fs, getenv)
	return s, errors.Join(envErr, s.Validate())
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
	switch s.ConfigSource {
	case "file":
		if s.Config == "" {
			bad("--config is required (or %s)", EnvName("config"))
		}
	case "xds":
		if s.XDS.Server == "" {
			bad("--config-source xds needs --xds-server")
		}
		if (s.XDS.TLSCert == "") != (s.XDS.TLSKey == "") {
			bad("--xds-tls-cert and --xds-tls-key go together")
		}
		if s.XDS.BackoffInitial <= 0 || s.XDS.BackoffMax < s.XDS.BackoffInitial {
			bad("--xds-backoff-initial must be positive and not above --xds-backoff-max")
		}
		// xds helper: the structured flags parse.
		if _, err := s.XDS.HeaderMap(); err != nil {
			errs = append(errs, err)
		}
		if _, err := s.XDS.NodeMetadataMap(); err != nil {
			errs = append(errs, err)
		}
	default:
		bad("--config-source %q: want file or xds", s.ConfigSource)
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
	case StoreMemory:
	case StoreRedis:
		switch s.RedisMode {
		case "single":
		case "sentinel":
			if s.RedisMaster == "" || s.RedisAddrs == "" {
				bad("--redis-mode sentinel needs --redis-master and --redis-addrs (the sentinels)")
			}
		case "cluster":
			if s.RedisAddrs == "" {
				bad("--redis-mode cluster needs --redis-addrs (the cluster nodes)")
			}
		default:
			bad("--redis-mode %q: want single, sentinel or cluster", s.RedisMode)
		}
		if s.RedisPipelines <= 0 || s.RedisMaxBatch <= 0 || s.RedisBatchWindow < 0 {
			bad("--redis-pipelines and --redis-max-batch must be positive, --redis-batch-window not negative")
		}
		if (s.RedisTLSCert == "") != (s.RedisTLSKey == "") {
			bad("--redis-tls-cert and --redis-tls-key go together")
		}
	case StoreMemcached:
		if s.MemcachedServers == "" {
			bad("--store memcached needs --memcached-servers")
		}
	default:
		bad("--store %q: want %s", s.Store, orList(StoreNames()))
	}
	if !slices.Contains(server.FailureModes(), s.FailureMode) {
		bad("--failure-mode %q: want %s", s.FailureMode, orList(server.FailureModes()))
	}
	if s.StoreTimeout <= 0 {
		bad("--store-timeout must be positive, got %s", s.StoreTimeout)
	}
	if s.NearLimitRatio <= 0 || s.NearLimitRatio > 1 {
		bad("--near-limit-ratio must be in (0, 1], got %g", s.NearLimitRatio)
	}
	if s.LocalCacheSize < 0 {
		bad("--local-cache-size must not be negative")
	}
	if (s.GRPCTLSCert == "") != (s.GRPCTLSKey == "") {
		bad("--grpc-tls-cert and --grpc-tls-key go together")
	}
	if s.GRPCTLSClientCA != "" && s.GRPCTLSCert == "" {
		bad("--grpc-tls-client-ca needs --grpc-tls-cert and --grpc-tls-key")
	}
	if s.GRPCMaxConnAge < 0 || s.GRPCKeepalive < 0 || s.GRPCMaxRecvBytes <= 0 {
		bad("--grpc-max-connection-age and --grpc-keepalive-time must not be negative, --grpc-max-recv-bytes must be positive")
	}
	if s.GCHeapFloor < 0 {
		bad("--gc-heap-floor must not be negative, got %d", s.GCHeapFloor)
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
	errs = append(errs, s.Input.validate()...) // input.go
	s.Resil.validate(bad)
	errs = append(errs, s.validateRefenv()...)
	return errors.Join(errs...)
}
