package settings

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ReferenceCommand is the base name of envoyproxy/ratelimit's binary:
// Envoy Gateway starts its rate-limit Deployment as /bin/ratelimit with no
// arguments.
const ReferenceCommand = "ratelimit"

// LocalCacheEntryBytes is what one key of the over-limit cache is taken to
// cost when LOCAL_CACHE_SIZE_IN_BYTES (a byte budget in the reference) is
// turned into --local-cache-size (a number of keys).
const LocalCacheEntryBytes = 128

// ParseReference reads envoyproxy/ratelimit's environment variables, with
// their names, defaults and meanings as its src/settings/settings.go
// defines them, and maps them onto Serve. ENVOY_RLS_* variables are
// applied first and win over the reference's variable for the same
// setting. The result is validated like ParseServe's.
//
// warnings names, one entry per variable, each variable that is set but
// that envoy-rls cannot honour, with the reason; the caller logs them in
// one warning at start. err joins every invalid value.
func ParseReference(getenv func(string) string, out io.Writer) (s Serve, warnings []string, err error) {
	fs := ServeFlags(&s, out)
	if err := fs.Parse(nil); err != nil {
		return s, nil, err
	}
	envErr := applyEnv(fs, getenv)
	native := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { native[f.Name] = true })

	r := &refReader{getenv: getenv}
	r.read()
	var setErrs []error
	for _, m := range r.sets {
		if native[m.flag] {
			continue
		}
		if err := fs.Set(m.flag, m.value); err != nil {
			setErrs = append(setErrs, fmt.Errorf("settings: %s: --%s=%q: %w", m.from, m.flag, m.value, err))
		}
	}
	errs := append([]error{envErr}, r.errs...)
	errs = append(errs, setErrs...)
	errs = append(errs, s.Validate())
	return s, r.warns, errors.Join(errs...)
}

// refSet is one flag value derived from reference variables.
type refSet struct{ flag, value, from string }

// refReader reads the reference's variables and collects the flag values,
// warnings and errors they give.
type refReader struct {
	getenv func(string) string
	sets   []refSet
	warns  []string
	errs   []error
}

func (r *refReader) get(name string) (string, bool) {
	v := strings.TrimSpace(r.getenv(name))
	return v, v != ""
}

// or returns the variable's value, or def when it is unset.
func (r *refReader) or(name, def string) string {
	if v, ok := r.get(name); ok {
		return v
	}
	return def
}

func (r *refReader) bad(name, v string, err error) {
	r.errs = append(r.errs, fmt.Errorf("settings: %s=%q: %w", name, v, err))
}

// boolean returns the variable parsed as strconv.ParseBool does (as the
// reference's envconfig does), or def when unset.
func (r *refReader) boolean(name string, def bool) bool {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.bad(name, v, errors.New("want true or false"))
		return def
	}
	return b
}

// explicitBool returns the variable's boolean value and whether it is
// set at all.
func (r *refReader) explicitBool(name string) (value, set bool) {
	if _, ok := r.get(name); !ok {
		return false, false
	}
	return r.boolean(name, false), true
}

func (r *refReader) to(flag, value, from string) {
	r.sets = append(r.sets, refSet{flag: flag, value: value, from: from})
}

// copy maps a variable, when set, onto flag unchanged.
func (r *refReader) copy(name, flag string) {
	if v, ok := r.get(name); ok {
		r.to(flag, v, name)
	}
}

// duration maps a Go duration variable, when set, onto flag.
func (r *refReader) duration(name, flag string) {
	v, ok := r.get(name)
	if !ok {
		return
	}
	if _, err := time.ParseDuration(v); err != nil {
		r.bad(name, v, errors.New("want a duration such as 10s"))
		return
	}
	r.to(flag, v, name)
}

// integer maps an integer variable, when set, onto flag.
func (r *refReader) integer(name, flag string) {
	v, ok := r.get(name)
	if !ok {
		return
	}
	if _, err := strconv.Atoi(v); err != nil {
		r.bad(name, v, errors.New("want an integer"))
		return
	}
	r.to(flag, v, name)
}

func (r *refReader) warn(name, why string) {
	r.warns = append(r.warns, name+": "+why)
}

// unsupported warns about each of names that is set.
func (r *refReader) unsupported(why string, names ...string) {
	for _, n := range names {
		if _, ok := r.get(n); ok {
			r.warn(n, why)
		}
	}
}

// unusedWithout warns about each of names that is set while the switch
// variable that enables them is off (the reference ignores them too).
func (r *refReader) unusedWithout(on bool, switchName string, names ...string) {
	if on {
		return
	}
	r.unsupported("not used without "+switchName+"=true (as in the reference)", names...)
}

// read maps every reference variable.
func (r *refReader) read() {
	r.listeners()
	r.logging()
	r.config()
	r.xds()
	r.store()
	r.responses()
	r.stats()
	r.tracing()
}

func (r *refReader) hostPort(hostVar, portVar, defHost, defPort, flag string) {
	host, port := r.or(hostVar, defHost), r.or(portVar, defPort)
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.bad(portVar, port, errors.New("want a port number"))
		return
	}
	r.to(flag, net.JoinHostPort(host, port), hostVar+"/"+portVar)
}

func (r *refReader) listeners() {
	// An unset HOST listens on every address, IPv6 included; the
	// reference's 0.0.0.0 default is IPv4 only.
	r.hostPort("HOST", "PORT", "", "8080", "http-addr")
	r.hostPort("GRPC_HOST", "GRPC_PORT", "", "8081", "grpc-addr")
	// The debug listener serves pprof: loopback unless DEBUG_HOST says
	// otherwise (the reference's default is 0.0.0.0).
	r.hostPort("DEBUG_HOST", "DEBUG_PORT", "127.0.0.1", "6070", "debug-addr")
	r.unsupported("envoy-rls serves gRPC on TCP only (GRPC_HOST/GRPC_PORT)", "GRPC_UDS")

	useTLS := r.boolean("GRPC_SERVER_USE_TLS", false)
	r.unusedWithout(useTLS, "GRPC_SERVER_USE_TLS", "GRPC_SERVER_TLS_CERT", "GRPC_SERVER_TLS_KEY", "GRPC_CLIENT_TLS_CACERT", "GRPC_SERVER_TLS_CA_CERT")
	if useTLS {
		cert, okc := r.get("GRPC_SERVER_TLS_CERT")
		key, okk := r.get("GRPC_SERVER_TLS_KEY")
		if !okc || !okk {
			r.bad("GRPC_SERVER_USE_TLS", "true", errors.New("needs GRPC_SERVER_TLS_CERT and GRPC_SERVER_TLS_KEY"))
		} else {
			r.to("grpc-tls-cert", cert, "GRPC_SERVER_TLS_CERT")
			r.to("grpc-tls-key", key, "GRPC_SERVER_TLS_KEY")
		}
		// GRPC_CLIENT_TLS_CACERT is the reference's client CA. Envoy
		// Gateway sets GRPC_SERVER_TLS_CA_CERT instead, which the
		// reference ignores; envoy-rls takes it as the client CA too:
		// Envoy Gateway's Envoy always presents its client certificate,
		// signed by that CA, to the rate-limit cluster
		// (docs/gateway.md explains).
		if ca, ok := r.get("GRPC_CLIENT_TLS_CACERT"); ok {
			r.to("grpc-tls-client-ca", ca, "GRPC_CLIENT_TLS_CACERT")
		} else if ca, ok := r.get("GRPC_SERVER_TLS_CA_CERT"); ok {
			r.to("grpc-tls-client-ca", ca, "GRPC_SERVER_TLS_CA_CERT")
		}
	}
	r.unsupported("client certificates are checked against the CA only, not a SAN", "GRPC_CLIENT_TLS_SAN")
	r.duration("GRPC_MAX_CONNECTION_AGE", "grpc-max-connection-age")
	r.duration("GRPC_MAX_CONNECTION_AGE_GRACE", "grpc-max-connection-age-grace")
}

func (r *refReader) logging() {
	level := r.or("LOG_LEVEL", "WARN")
	switch strings.ToLower(level) {
	case "trace", "debug":
		r.to("log-level", "debug", "LOG_LEVEL")
	case "info":
		r.to("log-level", "info", "LOG_LEVEL")
	case "warn", "warning":
		r.to("log-level", "warn", "LOG_LEVEL")
	case "error", "fatal", "panic":
		r.to("log-level", "error", "LOG_LEVEL")
	default:
		r.bad("LOG_LEVEL", level, errors.New("want trace, debug, info, warn, error, fatal or panic"))
	}
	if strings.EqualFold(r.or("LOG_FORMAT", "text"), "json") {
		r.to("log-format", "json", "LOG_FORMAT")
	} else {
		r.to("log-format", "console", "LOG_FORMAT")
	}
}

func (r *refReader) config() {
	switch t := r.or("CONFIG_TYPE", "FILE"); strings.ToUpper(t) {
	case "FILE":
		r.to("config-source", "file", "CONFIG_TYPE")
	case "GRPC_XDS_SOTW":
		r.to("config-source", "xds", "CONFIG_TYPE")
	default:
		r.bad("CONFIG_TYPE", t, errors.New("want FILE or GRPC_XDS_SOTW"))
	}
	// The reference reads RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY
	// whether or not it watches the root.
	dir := filepath.Join(r.or("RUNTIME_ROOT", "/srv/runtime_data/current"), r.or("RUNTIME_SUBDIRECTORY", ""), r.or("RUNTIME_APPDIRECTORY", "config"))
	r.to("config", dir, "RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY")
	if ignore, set := r.explicitBool("RUNTIME_IGNOREDOTFILES"); set && !ignore {
		r.warn("RUNTIME_IGNOREDOTFILES", "envoy-rls always skips dot files, and reads only *.yaml and *.yml files")
	}
	if watch, set := r.explicitBool("RUNTIME_WATCH_ROOT"); set && watch {
		r.warn("RUNTIME_WATCH_ROOT", "envoy-rls watches the config directory itself (ConfigMap ..data swaps and symlinked files included), not a swap of RUNTIME_ROOT")
	}
	r.copyBool("FORCE_START_WITHOUT_INITIAL_CONFIG", "force-start-without-config")
	r.copyBool("MERGE_DOMAIN_CONFIG", "merge-domain-config")
	if v, set := r.explicitBool("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED"); set && v {
		r.warn("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", "not read; /healthcheck follows envoy-rls's own readiness (see docs/migration.md)")
	}
}

// copyBool maps a boolean variable, when set, onto a boolean flag.
func (r *refReader) copyBool(name, flag string) {
	if v, set := r.explicitBool(name); set {
		r.to(flag, strconv.FormatBool(v), name)
	}
}

func (r *refReader) xds() {
	r.to("xds-server", r.or("CONFIG_GRPC_XDS_SERVER_URL", "localhost:18000"), "CONFIG_GRPC_XDS_SERVER_URL")
	r.to("xds-node-id", r.or("CONFIG_GRPC_XDS_NODE_ID", "default"), "CONFIG_GRPC_XDS_NODE_ID")
	if v, ok := r.get("CONFIG_GRPC_XDS_NODE_METADATA"); ok {
		// "k1=v1,k2=v2": string values; entries without "=" are dropped,
		// as the reference drops them.
		md := map[string]string{}
		for _, e := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(e, "="); ok {
				md[k] = val
			}
		}
		b, err := json.Marshal(md)
		if err != nil {
			r.bad("CONFIG_GRPC_XDS_NODE_METADATA", v, err)
		} else {
			r.to("xds-node-metadata", string(b), "CONFIG_GRPC_XDS_NODE_METADATA")
		}
	}
	if v, ok := r.get("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS"); ok {
		// envconfig's map form: "k1:v1,k2:v2".
		var pairs []string
		for _, e := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(e, ":")
			if !ok || strings.TrimSpace(k) == "" {
				r.bad("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", v, fmt.Errorf("entry %q: want key:value", e))
				pairs = nil
				break
			}
			pairs = append(pairs, strings.TrimSpace(k)+"="+strings.TrimSpace(val))
		}
		if pairs != nil {
			r.to("xds-headers", strings.Join(pairs, ","), "CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS")
		}
	}
	useTLS := r.boolean("CONFIG_GRPC_XDS_SERVER_USE_TLS", false)
	r.unusedWithout(useTLS, "CONFIG_GRPC_XDS_SERVER_USE_TLS", "CONFIG_GRPC_XDS_CLIENT_TLS_CERT", "CONFIG_GRPC_XDS_CLIENT_TLS_KEY",
		"CONFIG_GRPC_XDS_SERVER_TLS_CACERT", "CONFIG_GRPC_XDS_SERVER_TLS_SAN")
	if useTLS {
		r.to("xds-tls", "true", "CONFIG_GRPC_XDS_SERVER_USE_TLS")
		r.copy("CONFIG_GRPC_XDS_CLIENT_TLS_CERT", "xds-tls-cert")
		r.copy("CONFIG_GRPC_XDS_CLIENT_TLS_KEY", "xds-tls-key")
		r.copy("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", "xds-tls-ca")
		r.copy("CONFIG_GRPC_XDS_SERVER_TLS_SAN", "xds-tls-server-name")
	}
	initial := r.or("XDS_CLIENT_BACKOFF_INITIAL_INTERVAL", "10s")
	maxi := r.or("XDS_CLIENT_BACKOFF_MAX_INTERVAL", "60s")
	for _, v := range [][2]string{{"XDS_CLIENT_BACKOFF_INITIAL_INTERVAL", initial}, {"XDS_CLIENT_BACKOFF_MAX_INTERVAL", maxi}} {
		if _, err := time.ParseDuration(v[1]); err != nil {
			r.bad(v[0], v[1], errors.New("want a duration such as 10s"))
			return
		}
	}
	r.to("xds-backoff-initial", initial, "XDS_CLIENT_BACKOFF_INITIAL_INTERVAL")
	r.to("xds-backoff-max", maxi, "XDS_CLIENT_BACKOFF_MAX_INTERVAL")
	r.unsupported("envoy-rls doubles the redial wait with its own jitter (XDS_CLIENT_BACKOFF_INITIAL_INTERVAL/MAX_INTERVAL apply)",
		"XDS_CLIENT_BACKOFF_RANDOM_FACTOR", "XDS_CLIENT_BACKOFF_JITTER", "CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL")
	r.unsupported("the xDS client keeps gRPC's default receive limit", "XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES")
}

func (r *refReader) store() {
	switch b := r.or("BACKEND_TYPE", "redis"); strings.ToLower(b) {
	case "redis":
		r.to("store", "redis", "BACKEND_TYPE")
	case "memcache":
		r.to("store", "memcached", "BACKEND_TYPE")
	default:
		r.bad("BACKEND_TYPE", b, errors.New("want redis or memcache"))
	}
	r.redis()

	if v, ok := r.get("MEMCACHE_HOST_PORT"); ok {
		r.to("memcached-servers", v, "MEMCACHE_HOST_PORT")
	}
	r.unsupported("not supported: list the servers in MEMCACHE_HOST_PORT", "MEMCACHE_SRV", "MEMCACHE_SRV_REFRESH")
	r.unsupported("not supported: envoy-rls talks to memcached without TLS", "MEMCACHE_TLS", "MEMCACHE_TLS_CLIENT_CERT",
		"MEMCACHE_TLS_CLIENT_KEY", "MEMCACHE_TLS_CACERT", "MEMCACHE_TLS_SKIP_HOSTNAME_VERIFICATION")
	r.unsupported("envoy-rls sizes its memcached connection pool itself", "MEMCACHE_MAX_IDLE_CONNS")

	if v, ok := r.get("LOCAL_CACHE_SIZE_IN_BYTES"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			r.bad("LOCAL_CACHE_SIZE_IN_BYTES", v, errors.New("want a non-negative integer"))
		case n > 0:
			r.to("local-cache-size", strconv.Itoa(max(1, n/LocalCacheEntryBytes)), "LOCAL_CACHE_SIZE_IN_BYTES")
		}
	}
	r.copy("NEAR_LIMIT_RATIO", "near-limit-ratio")
	r.copy("CACHE_KEY_PREFIX", "key-prefix")
	r.unsupported("envoy-rls keys expire at their window's end, without jitter", "EXPIRATION_JITTER_MAX_SECONDS")
	if v, set := r.explicitBool("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT"); set && !v {
		r.warn("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "envoy-rls never counts the hits of a denied request (as the reference does with true)")
	}
}

func (r *refReader) redis() {
	socket := strings.ToLower(r.or("REDIS_SOCKET_TYPE", "unix"))
	if socket != "tcp" && socket != "unix" {
		r.bad("REDIS_SOCKET_TYPE", socket, errors.New("want tcp or unix"))
	}
	useTLS := r.boolean("REDIS_TLS", false)
	url := r.or("REDIS_URL", "/var/run/nutcracker/ratelimit.sock")
	switch typ := r.or("REDIS_TYPE", "SINGLE"); strings.ToLower(typ) {
	case "single":
		r.to("redis-mode", "single", "REDIS_TYPE")
		switch {
		case strings.Contains(url, "://"):
			r.to("redis-url", url, "REDIS_URL")
		case socket == "unix":
			r.to("redis-url", "unix://"+url, "REDIS_SOCKET_TYPE/REDIS_URL")
		case useTLS:
			r.to("redis-url", "rediss://"+url, "REDIS_TLS/REDIS_URL")
		default:
			r.to("redis-url", "redis://"+url, "REDIS_URL")
		}
	case "sentinel":
		parts := splitNonEmpty(url)
		if len(parts) < 2 {
			r.bad("REDIS_URL", url, errors.New("REDIS_TYPE=SENTINEL wants the master name, then the sentinels as host:port, comma-separated"))
			break
		}
		r.to("redis-mode", "sentinel", "REDIS_TYPE")
		r.to("redis-master", parts[0], "REDIS_URL")
		r.to("redis-addrs", strings.Join(parts[1:], ","), "REDIS_URL")
	case "cluster":
		r.to("redis-mode", "cluster", "REDIS_TYPE")
		r.to("redis-addrs", strings.Join(splitNonEmpty(url), ","), "REDIS_URL")
	default:
		r.bad("REDIS_TYPE", typ, errors.New("want SINGLE, SENTINEL or CLUSTER"))
	}
	if auth, ok := r.get("REDIS_AUTH"); ok {
		// "user:password" or a password alone, cut at the first colon as
		// the reference does.
		if user, pass, found := strings.Cut(auth, ":"); found {
			r.to("redis-username", user, "REDIS_AUTH")
			r.to("redis-password", pass, "REDIS_AUTH")
		} else {
			r.to("redis-password", auth, "REDIS_AUTH")
		}
	}
	r.unusedWithout(useTLS, "REDIS_TLS", "REDIS_TLS_CACERT", "REDIS_TLS_CLIENT_CERT", "REDIS_TLS_CLIENT_KEY")
	if useTLS {
		r.to("redis-tls", "true", "REDIS_TLS")
		r.copy("REDIS_TLS_CACERT", "redis-tls-ca")
		r.copy("REDIS_TLS_CLIENT_CERT", "redis-tls-cert")
		r.copy("REDIS_TLS_CLIENT_KEY", "redis-tls-key")
	}
	if v, set := r.explicitBool("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION"); set && v {
		r.warn("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "envoy-rls always verifies the server's name; set ENVOY_RLS_REDIS_TLS_SERVER_NAME to the name in its certificate")
	}
	r.integer("REDIS_POOL_SIZE", "redis-pool-size")
	r.duration("REDIS_PIPELINE_WINDOW", "redis-batch-window")
	r.unsupported("deprecated and without effect in the reference too", "REDIS_PIPELINE_LIMIT")
	r.unsupported("each store round trip is bounded by --store-timeout (ENVOY_RLS_STORE_TIMEOUT, default 15ms) instead", "REDIS_TIMEOUT")
	r.unsupported("envoy-rls starts without waiting for Redis and reconnects on its own", "REDIS_STARTUP_INITIAL_INTERVAL",
		"REDIS_STARTUP_MAX_INTERVAL", "REDIS_STARTUP_MAX_ELAPSED_TIME")
	if v, ok := r.get("REDIS_POOL_ON_EMPTY_BEHAVIOR"); ok && !strings.EqualFold(v, "WAIT") {
		r.warn("REDIS_POOL_ON_EMPTY_BEHAVIOR", "envoy-rls queues requests for a connection within --store-timeout (the reference's WAIT)")
	}
	r.unsupported("envoy-rls pipelines a cluster request per node on its own", "REDIS_CLUSTER_PIPELINE_PARALLELISM")
	// The reference's health follows Redis only when asked; Envoy
	// Gateway's liveness probe is /healthcheck, so following Redis there
	// would restart every replica during a Redis outage.
	r.to("health-follows-store", strconv.FormatBool(r.boolean("REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", false)), "REDIS_HEALTH_CHECK_ACTIVE_CONNECTION")
	r.unsupported("the Redis Sentinel password is not supported; the sentinels must not require one", "REDIS_SENTINEL_AUTH")
	perSecond := []string{"REDIS_PERSECOND", "REDIS_PERSECOND_SOCKET_TYPE", "REDIS_PERSECOND_TYPE", "REDIS_PERSECOND_URL",
		"REDIS_PERSECOND_POOL_SIZE", "REDIS_PERSECOND_AUTH", "REDIS_PERSECOND_TLS", "REDIS_PERSECOND_SENTINEL_AUTH",
		"REDIS_PERSECOND_PIPELINE_WINDOW", "REDIS_PERSECOND_PIPELINE_LIMIT", "REDIS_PERSECOND_CLUSTER_PIPELINE_PARALLELISM",
		"REDIS_PERSECOND_TIMEOUT", "REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR"}
	r.unsupported("a second Redis for per-second limits is not supported; every limit uses REDIS_URL", perSecond...)
}

func (r *refReader) responses() {
	r.copyBool("SHADOW_MODE", "shadow-mode")
	if v, set := r.explicitBool("QUOTA_MODE"); set && v {
		r.warn("QUOTA_MODE", "global quota mode is not supported")
	}
	r.copyBool("LIMIT_RESPONSE_HEADERS_ENABLED", "response-headers")
	r.copy("LIMIT_LIMIT_HEADER", "header-limit")
	r.copy("LIMIT_REMAINING_HEADER", "header-remaining")
	r.copy("LIMIT_RESET_HEADER", "header-reset")
	r.copyBool("RESPONSE_DYNAMIC_METADATA", "response-dynamic-metadata")
}

func (r *refReader) stats() {
	prom := r.boolean("USE_PROMETHEUS", false)
	r.unusedWithout(prom, "USE_PROMETHEUS", "PROMETHEUS_ADDR", "PROMETHEUS_PATH", "PROMETHEUS_MAPPER_YAML")
	if prom {
		r.to("metrics-addr", r.or("PROMETHEUS_ADDR", ":9090"), "PROMETHEUS_ADDR")
		r.to("metrics-path", r.or("PROMETHEUS_PATH", "/metrics"), "PROMETHEUS_PATH")
		r.to("reference-metrics", "true", "USE_PROMETHEUS")
		r.unsupported("the statsd-exporter mapping is not read; the reference's default names (ratelimit_service_*, the ones Envoy Gateway's mapping also gives) are exported, with envoy-rls's own", "PROMETHEUS_MAPPER_YAML")
	}
	if v, set := r.explicitBool("PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS"); set && v {
		r.warn("PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS", "response times are exported in seconds")
	}
	const noStatsd = "statsd is not supported; metrics are served for Prometheus on --http-addr's /metrics (and PROMETHEUS_ADDR with USE_PROMETHEUS=true)"
	if v, set := r.explicitBool("USE_STATSD"); set && v {
		r.warn("USE_STATSD", noStatsd)
	}
	if v, set := r.explicitBool("USE_DOG_STATSD"); set && v {
		r.warn("USE_DOG_STATSD", noStatsd)
	}
	r.unsupported(noStatsd, "STATSD_HOST", "STATSD_PORT", "USE_DOG_STATSD_MOGRIFIERS", "EXTRA_TAGS", "STATS_FLUSH_INTERVAL")
	if v, set := r.explicitBool("DISABLE_STATS"); set && v {
		r.warn("DISABLE_STATS", "metrics cannot be turned off; they cost nothing until scraped")
	}
}

func (r *refReader) tracing() {
	r.copyBool("TRACING_ENABLED", "tracing")
	// The reference names its service "RateLimit" unless told otherwise;
	// envoy-rls lets OTEL_SERVICE_NAME name it first.
	if v, ok := r.get("TRACING_SERVICE_NAME"); ok {
		r.to("tracing-service-name", v, "TRACING_SERVICE_NAME")
	} else if _, ok := r.get("OTEL_SERVICE_NAME"); !ok {
		r.to("tracing-service-name", "RateLimit", "TRACING_SERVICE_NAME")
	}
	r.copy("TRACING_SERVICE_NAMESPACE", "tracing-service-namespace")
	r.copy("TRACING_SERVICE_INSTANCE_ID", "tracing-service-instance-id")
	switch p := r.or("TRACING_EXPORTER_PROTOCOL", ""); strings.ToLower(p) {
	case "":
		if _, ok := r.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); ok {
			break
		}
		if _, ok := r.get("OTEL_EXPORTER_OTLP_PROTOCOL"); ok {
			break
		}
		r.to("tracing-protocol", "http", "TRACING_EXPORTER_PROTOCOL")
	case "http", "grpc":
		r.to("tracing-protocol", strings.ToLower(p), "TRACING_EXPORTER_PROTOCOL")
	default:
		r.bad("TRACING_EXPORTER_PROTOCOL", p, errors.New("want http or grpc"))
	}
	r.copy("TRACING_SAMPLING_RATE", "tracing-sampling-rate")
}

// splitNonEmpty splits a comma-separated list, trimming and dropping
// empty items.
func splitNonEmpty(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
