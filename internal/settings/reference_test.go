package settings

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/xdstest"
)

// parseRef runs ParseReference on env.
func parseRef(t *testing.T, env map[string]string) (Serve, []string, error) {
	t.Helper()
	return ParseReference(func(k string) string { return env[k] }, io.Discard)
}

// mustRef runs ParseReference on env and fails the test on an error.
func mustRef(t *testing.T, env map[string]string) (Serve, []string) {
	t.Helper()
	s, w, err := parseRef(t, env)
	if err != nil {
		t.Fatalf("ParseReference(%v): %v", env, err)
	}
	return s, w
}

func TestReferenceDefaults(t *testing.T) {
	s, w := mustRef(t, nil)
	if len(w) != 0 {
		t.Errorf("warnings with an empty environment: %v", w)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http", s.HTTPAddr, ":8080"},
		{"grpc", s.GRPCAddr, ":8081"},
		{"debug", s.DebugAddr, "127.0.0.1:6070"},
		{"log level (reference WARN)", s.LogLevel, "warn"},
		{"log format (reference text)", s.LogFormat, "console"},
		{"config source", s.ConfigSource, "file"},
		{"config", s.Config, "/srv/runtime_data/current/config"},
		{"store", s.Store, "redis"},
		{"redis mode", s.RedisMode, "single"},
		{"redis url (unix socket)", s.RedisURL, "unix:///var/run/nutcracker/ratelimit.sock"},
		{"xds server", s.XDS.Server, "localhost:18000"},
		{"xds node id", s.XDS.NodeID, "default"},
		{"xds backoff initial", s.XDS.BackoffInitial, 10 * time.Second},
		{"xds backoff max", s.XDS.BackoffMax, 60 * time.Second},
		{"xds tls", s.XDS.TLS, false},
		{"grpc tls", s.GRPCTLSCert, ""},
		{"metrics addr", s.MetricsAddr, ""},
		{"reference metrics", s.ReferenceMetrics, false},
		{"tracing", s.Tracing.Enabled, false},
		{"tracing service", s.Tracing.ServiceName, "RateLimit"},
		{"tracing protocol", s.Tracing.Protocol, "http"},
		{"tracing rate", s.Tracing.SamplingRate, 1.0},
		{"force start", s.ForceStartWithoutConfig, false},
		{"key prefix (envoy-rls's)", s.KeyPrefix, "envoy-rls:"},
		{"local cache", s.LocalCacheSize, 0},
		{"health follows store (REDIS_HEALTH_CHECK_ACTIVE_CONNECTION false)", s.HealthFollowsStore, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestReferenceEnvoyGateway(t *testing.T) {
	s, w := mustRef(t, xdstest.GatewayEnv(nil))
	checks := []struct {
		name      string
		got, want any
	}{
		{"config source", s.ConfigSource, "xds"},
		{"config dir", s.Config, "/data/ratelimit/config"},
		{"xds server", s.XDS.Server, "envoy-gateway:18001"},
		{"xds node", s.XDS.NodeID, "envoy-ratelimit"},
		{"xds tls", s.XDS.TLS, true},
		{"xds cert", s.XDS.TLSCert, "/certs/tls.crt"},
		{"xds key", s.XDS.TLSKey, "/certs/tls.key"},
		{"xds ca", s.XDS.TLSCA, "/certs/ca.crt"},
		{"grpc cert", s.GRPCTLSCert, "/certs/tls.crt"},
		{"grpc key", s.GRPCTLSKey, "/certs/tls.key"},
		{"grpc client ca (GRPC_SERVER_TLS_CA_CERT)", s.GRPCTLSClientCA, "/certs/ca.crt"},
		{"force start", s.ForceStartWithoutConfig, true},
		{"log level", s.LogLevel, "info"},
		{"store", s.Store, "redis"},
		{"redis url", s.RedisURL, "redis://redis.redis-system.svc.cluster.local:6379"},
		{"redis mode", s.RedisMode, "single"},
		{"metrics addr", s.MetricsAddr, ":19001"},
		{"metrics path", s.MetricsPath, "/metrics"},
		{"reference metrics", s.ReferenceMetrics, true},
		{"tracing", s.Tracing.Enabled, true},
		{"tracing name", s.Tracing.ServiceName, "envoy-ratelimit"},
		{"tracing ns", s.Tracing.ServiceNamespace, "envoy-gateway-system"},
		{"tracing instance", s.Tracing.ServiceInstanceID, "envoy-ratelimit-7d9c-abcde"},
		{"tracing rate", s.Tracing.SamplingRate, 0.5},
		{"tracing protocol (reference default http)", s.Tracing.Protocol, "http"},
		{"http", s.HTTPAddr, ":8080"},
		{"grpc", s.GRPCAddr, ":8081"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// Only the statsd mapping file is beyond envoy-rls, and it says so.
	if len(w) != 1 || !strings.HasPrefix(w[0], "PROMETHEUS_MAPPER_YAML: ") {
		t.Errorf("warnings %q, want one for PROMETHEUS_MAPPER_YAML", w)
	}
}

// TestReferenceMappings checks each variable's mapping on its own.
func TestReferenceMappings(t *testing.T) {
	cases := []struct {
		env   map[string]string
		check func(Serve) (got, want any)
	}{
		{map[string]string{"HOST": "10.0.0.1", "PORT": "9080"}, func(s Serve) (any, any) { return s.HTTPAddr, "10.0.0.1:9080" }},
		{map[string]string{"HOST": "::1"}, func(s Serve) (any, any) { return s.HTTPAddr, "[::1]:8080" }},
		{map[string]string{"GRPC_HOST": "127.0.0.1", "GRPC_PORT": "9081"}, func(s Serve) (any, any) { return s.GRPCAddr, "127.0.0.1:9081" }},
		{map[string]string{"DEBUG_HOST": "0.0.0.0", "DEBUG_PORT": "7070"}, func(s Serve) (any, any) { return s.DebugAddr, "0.0.0.0:7070" }},
		{map[string]string{"DEBUG_PORT": "7070"}, func(s Serve) (any, any) { return s.DebugAddr, "127.0.0.1:7070" }},
		{map[string]string{"GRPC_SERVER_USE_TLS": "true", "GRPC_SERVER_TLS_CERT": "c", "GRPC_SERVER_TLS_KEY": "k", "GRPC_CLIENT_TLS_CACERT": "ca1", "GRPC_SERVER_TLS_CA_CERT": "ca2"},
			func(s Serve) (any, any) { return s.GRPCTLSCert + s.GRPCTLSKey + s.GRPCTLSClientCA, "ckca1" }},
		{map[string]string{"GRPC_SERVER_USE_TLS": "true", "GRPC_SERVER_TLS_CERT": "c", "GRPC_SERVER_TLS_KEY": "k"},
			func(s Serve) (any, any) { return s.GRPCTLSClientCA, "" }},
		{map[string]string{"GRPC_MAX_CONNECTION_AGE": "24h"}, func(s Serve) (any, any) { return s.GRPCMaxConnAge, 24 * time.Hour }},
		{map[string]string{"GRPC_MAX_CONNECTION_AGE_GRACE": "1h"}, func(s Serve) (any, any) { return s.GRPCMaxConnAgeGrace, time.Hour }},
		{map[string]string{"LOG_LEVEL": "trace"}, func(s Serve) (any, any) { return s.LogLevel, "debug" }},
		{map[string]string{"LOG_LEVEL": "DEBUG"}, func(s Serve) (any, any) { return s.LogLevel, "debug" }},
		{map[string]string{"LOG_LEVEL": "warning"}, func(s Serve) (any, any) { return s.LogLevel, "warn" }},
		{map[string]string{"LOG_LEVEL": "Error"}, func(s Serve) (any, any) { return s.LogLevel, "error" }},
		{map[string]string{"LOG_LEVEL": "fatal"}, func(s Serve) (any, any) { return s.LogLevel, "error" }},
		{map[string]string{"LOG_FORMAT": "json"}, func(s Serve) (any, any) { return s.LogFormat, "json" }},
		{map[string]string{"LOG_FORMAT": "text"}, func(s Serve) (any, any) { return s.LogFormat, "console" }},
		{map[string]string{"CONFIG_TYPE": "file"}, func(s Serve) (any, any) { return s.ConfigSource, "file" }},
		{map[string]string{"RUNTIME_ROOT": "/r", "RUNTIME_SUBDIRECTORY": "s", "RUNTIME_APPDIRECTORY": "a"}, func(s Serve) (any, any) { return s.Config, "/r/s/a" }},
		{map[string]string{"RUNTIME_ROOT": "/r"}, func(s Serve) (any, any) { return s.Config, "/r/config" }},
		{map[string]string{"FORCE_START_WITHOUT_INITIAL_CONFIG": "1"}, func(s Serve) (any, any) { return s.ForceStartWithoutConfig, true }},
		{map[string]string{"MERGE_DOMAIN_CONFIG": "true"}, func(s Serve) (any, any) { return s.MergeDomainConfig, true }},
		{map[string]string{"CONFIG_GRPC_XDS_NODE_METADATA": "b=2,a=1,junk"}, func(s Serve) (any, any) { return s.XDS.NodeMetadata, `{"a":"1","b":"2"}` }},
		{map[string]string{"CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS": "x-a:1, x-b:two"}, func(s Serve) (any, any) { return s.XDS.Headers, "x-a=1,x-b=two" }},
		{map[string]string{"CONFIG_GRPC_XDS_SERVER_USE_TLS": "true", "CONFIG_GRPC_XDS_SERVER_TLS_SAN": "xds.example"}, func(s Serve) (any, any) { return s.XDS.TLSServerName, "xds.example" }},
		{map[string]string{"CONFIG_GRPC_XDS_SERVER_USE_TLS": "true"}, func(s Serve) (any, any) { return s.XDS.TLS, true }},
		{map[string]string{"XDS_CLIENT_BACKOFF_INITIAL_INTERVAL": "1s", "XDS_CLIENT_BACKOFF_MAX_INTERVAL": "5s"},
			func(s Serve) (any, any) {
				return [2]time.Duration{s.XDS.BackoffInitial, s.XDS.BackoffMax}, [2]time.Duration{time.Second, 5 * time.Second}
			}},
		{map[string]string{"BACKEND_TYPE": "memcache", "MEMCACHE_HOST_PORT": "m1:11211,m2:11211"},
			func(s Serve) (any, any) { return s.Store + " " + s.MemcachedServers, "memcached m1:11211,m2:11211" }},
		{map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "redis:6379"}, func(s Serve) (any, any) { return s.RedisURL, "redis://redis:6379" }},
		{map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "redis:6379", "REDIS_TLS": "true"},
			func(s Serve) (any, any) { return s.RedisURL + " " + boolStr(s.RedisTLS), "rediss://redis:6379 true" }},
		{map[string]string{"REDIS_SOCKET_TYPE": "unix", "REDIS_URL": "/run/redis.sock"}, func(s Serve) (any, any) { return s.RedisURL, "unix:///run/redis.sock" }},
		{map[string]string{"REDIS_URL": "redis://u:p@redis:6379/2"}, func(s Serve) (any, any) { return s.RedisURL, "redis://u:p@redis:6379/2" }},
		{map[string]string{"REDIS_TYPE": "SENTINEL", "REDIS_URL": "mymaster,s1:26379, s2:26379"},
			func(s Serve) (any, any) {
				return s.RedisMode + " " + s.RedisMaster + " " + s.RedisAddrs, "sentinel mymaster s1:26379,s2:26379"
			}},
		{map[string]string{"REDIS_TYPE": "cluster", "REDIS_URL": "n1:7000,n2:7000,n3:7000"},
			func(s Serve) (any, any) { return s.RedisMode + " " + s.RedisAddrs, "cluster n1:7000,n2:7000,n3:7000" }},
		{map[string]string{"REDIS_AUTH": "user:pa:ss"}, func(s Serve) (any, any) { return s.RedisUsername + "|" + s.RedisPassword, "user|pa:ss" }},
		{map[string]string{"REDIS_AUTH": "secret"}, func(s Serve) (any, any) { return s.RedisUsername + "|" + s.RedisPassword, "|secret" }},
		{map[string]string{"REDIS_TLS": "true", "REDIS_TLS_CACERT": "ca", "REDIS_TLS_CLIENT_CERT": "c", "REDIS_TLS_CLIENT_KEY": "k"},
			func(s Serve) (any, any) { return s.RedisTLSCA + s.RedisTLSCert + s.RedisTLSKey, "cack" }},
		{map[string]string{"REDIS_HEALTH_CHECK_ACTIVE_CONNECTION": "true"}, func(s Serve) (any, any) { return s.HealthFollowsStore, true }},
		{map[string]string{"REDIS_POOL_SIZE": "25"}, func(s Serve) (any, any) { return s.RedisPoolSize, 25 }},
		{map[string]string{"REDIS_PIPELINE_WINDOW": "150us"}, func(s Serve) (any, any) { return s.RedisBatchWindow, 150 * time.Microsecond }},
		{map[string]string{"LOCAL_CACHE_SIZE_IN_BYTES": "1048576"}, func(s Serve) (any, any) { return s.LocalCacheSize, 1048576 / LocalCacheEntryBytes }},
		{map[string]string{"LOCAL_CACHE_SIZE_IN_BYTES": "10"}, func(s Serve) (any, any) { return s.LocalCacheSize, 1 }},
		{map[string]string{"NEAR_LIMIT_RATIO": "0.9"}, func(s Serve) (any, any) { return s.NearLimitRatio, 0.9 }},
		{map[string]string{"CACHE_KEY_PREFIX": "rl_"}, func(s Serve) (any, any) { return s.KeyPrefix, "rl_" }},
		{map[string]string{"SHADOW_MODE": "true"}, func(s Serve) (any, any) { return s.ShadowMode, true }},
		{map[string]string{"LIMIT_RESPONSE_HEADERS_ENABLED": "true"}, func(s Serve) (any, any) { return s.ResponseHeaders, true }},
		{map[string]string{"LIMIT_LIMIT_HEADER": "X-L", "LIMIT_REMAINING_HEADER": "X-R", "LIMIT_RESET_HEADER": "X-S"},
			func(s Serve) (any, any) { return s.HeaderLimit + s.HeaderRemaining + s.HeaderReset, "X-LX-RX-S" }},
		{map[string]string{"RESPONSE_DYNAMIC_METADATA": "true"}, func(s Serve) (any, any) { return s.DynamicMetadata, true }},
		{map[string]string{"USE_PROMETHEUS": "true"}, func(s Serve) (any, any) { return s.MetricsAddr + s.MetricsPath, ":9090/metrics" }},
		{map[string]string{"USE_PROMETHEUS": "true", "PROMETHEUS_ADDR": "127.0.0.1:9999", "PROMETHEUS_PATH": "/m"},
			func(s Serve) (any, any) { return s.MetricsAddr + s.MetricsPath, "127.0.0.1:9999/m" }},
		{map[string]string{"PROMETHEUS_ADDR": ":1"}, func(s Serve) (any, any) { return s.MetricsAddr, "" }},
		{map[string]string{"TRACING_ENABLED": "true"}, func(s Serve) (any, any) { return s.Tracing.Enabled, true }},
		{map[string]string{"TRACING_EXPORTER_PROTOCOL": "grpc"}, func(s Serve) (any, any) { return s.Tracing.Protocol, "grpc" }},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, func(s Serve) (any, any) { return s.Tracing.Protocol, "" }},
		{map[string]string{"OTEL_SERVICE_NAME": "rls"}, func(s Serve) (any, any) { return s.Tracing.ServiceName, "" }},
		{map[string]string{"TRACING_SAMPLING_RATE": "0.25"}, func(s Serve) (any, any) { return s.Tracing.SamplingRate, 0.25 }},
	}
	for _, c := range cases {
		s, _ := mustRef(t, c.env)
		if got, want := c.check(s); got != want {
			t.Errorf("%v: got %v, want %v", c.env, got, want)
		}
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestReferenceNativeWins checks that an ENVOY_RLS_* variable wins over
// the reference's variable for the same setting.
func TestReferenceNativeWins(t *testing.T) {
	s, _ := mustRef(t, map[string]string{
		"GRPC_PORT": "9081", EnvName("grpc-addr"): "127.0.0.1:7081",
		"LOG_LEVEL": "debug", EnvName("log-level"): "error",
		"REDIS_URL": "a:1", "REDIS_SOCKET_TYPE": "tcp",
		"CONFIG_TYPE": "GRPC_XDS_SOTW", EnvName("config-source"): "file", EnvName("config"): "/etc/rules",
	})
	if s.GRPCAddr != "127.0.0.1:7081" || s.LogLevel != "error" || s.ConfigSource != "file" || s.Config != "/etc/rules" {
		t.Errorf("native variables lost: grpc %q, log %q, source %q, config %q", s.GRPCAddr, s.LogLevel, s.ConfigSource, s.Config)
	}
	if s.RedisURL != "redis://a:1" {
		t.Errorf("reference variable without a native one lost: %q", s.RedisURL)
	}
}

// TestReferenceErrors checks that every bad value is reported, at once,
// naming its variable.
func TestReferenceErrors(t *testing.T) {
	_, _, err := parseRef(t, map[string]string{
		"CONFIG_TYPE":                     "GRPC_XDS_DELTA",
		"LOG_LEVEL":                       "loud",
		"BACKEND_TYPE":                    "etcd",
		"REDIS_TYPE":                      "ring",
		"REDIS_SOCKET_TYPE":               "udp",
		"PORT":                            "http",
		"GRPC_SERVER_USE_TLS":             "yes please",
		"GRPC_MAX_CONNECTION_AGE":         "forever",
		"REDIS_POOL_SIZE":                 "many",
		"LOCAL_CACHE_SIZE_IN_BYTES":       "-1",
		"TRACING_EXPORTER_PROTOCOL":       "zipkin",
		"XDS_CLIENT_BACKOFF_MAX_INTERVAL": "1 minute",
		"CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS": "novalue",
		"NEAR_LIMIT_RATIO":                          "2",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"CONFIG_TYPE", "LOG_LEVEL", "BACKEND_TYPE", "REDIS_TYPE", "REDIS_SOCKET_TYPE", "PORT",
		"GRPC_SERVER_USE_TLS", "GRPC_MAX_CONNECTION_AGE", "REDIS_POOL_SIZE", "LOCAL_CACHE_SIZE_IN_BYTES",
		"TRACING_EXPORTER_PROTOCOL", "XDS_CLIENT_BACKOFF_MAX_INTERVAL", "CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", "near-limit-ratio"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}

	for _, env := range []map[string]string{
		{"GRPC_SERVER_USE_TLS": "true", "GRPC_SERVER_TLS_CERT": "c"},
		{"REDIS_TYPE": "sentinel", "REDIS_URL": "mymaster"},
	} {
		if _, _, err := parseRef(t, env); err == nil {
			t.Errorf("%v: no error", env)
		}
	}
}

// TestReferenceWarnings checks that each variable envoy-rls cannot honour
// is named in a warning, and that honoured ones are not.
func TestReferenceWarnings(t *testing.T) {
	warned := []map[string]string{
		{"GRPC_UDS": "/tmp/rl.sock"},
		{"GRPC_CLIENT_TLS_SAN": "envoy"},
		{"GRPC_SERVER_TLS_CERT": "c"}, // without GRPC_SERVER_USE_TLS
		{"RUNTIME_IGNOREDOTFILES": "false"},
		{"RUNTIME_WATCH_ROOT": "true"},
		{"HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED": "true"},
		{"CONFIG_GRPC_XDS_SERVER_TLS_CACERT": "ca"}, // without CONFIG_GRPC_XDS_SERVER_USE_TLS
		{"XDS_CLIENT_BACKOFF_RANDOM_FACTOR": "0.7"},
		{"XDS_CLIENT_BACKOFF_JITTER": "false"},
		{"CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL": "1s"},
		{"XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES": "1000"},
		{"MEMCACHE_SRV": "_memcache._tcp.example"},
		{"MEMCACHE_SRV_REFRESH": "10s"},
		{"MEMCACHE_TLS": "true"},
		{"MEMCACHE_MAX_IDLE_CONNS": "4"},
		{"EXPIRATION_JITTER_MAX_SECONDS": "60"},
		{"STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT": "false"},
		{"REDIS_TLS_CACERT": "ca"}, // without REDIS_TLS
		{"REDIS_TLS_SKIP_HOSTNAME_VERIFICATION": "true"},
		{"REDIS_PIPELINE_LIMIT": "8"},
		{"REDIS_TIMEOUT": "1s"},
		{"REDIS_STARTUP_MAX_ELAPSED_TIME": "1m"},
		{"REDIS_POOL_ON_EMPTY_BEHAVIOR": "CREATE"},
		{"REDIS_CLUSTER_PIPELINE_PARALLELISM": "4"},
		{"REDIS_SENTINEL_AUTH": "pw"},
		{"REDIS_PERSECOND": "true"},
		{"REDIS_PERSECOND_URL": "r2:6379"},
		{"QUOTA_MODE": "true"},
		{"PROMETHEUS_ADDR": ":19001"}, // without USE_PROMETHEUS
		{"USE_PROMETHEUS": "true", "PROMETHEUS_MAPPER_YAML": "/etc/conf.yaml"},
		{"PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS": "true"},
		{"USE_STATSD": "true"},
		{"USE_DOG_STATSD": "true"},
		{"STATSD_HOST": "statsd"},
		{"EXTRA_TAGS": "a:b"},
		{"STATS_FLUSH_INTERVAL": "1s"},
		{"DISABLE_STATS": "true"},
	}
	for _, env := range warned {
		_, w, err := parseRef(t, env)
		if err != nil {
			t.Errorf("%v: %v", env, err)
			continue
		}
		for name := range env {
			if name == "USE_PROMETHEUS" {
				continue
			}
			if !slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, name+": ") }) {
				t.Errorf("%v: warnings %q do not name %s", env, w, name)
			}
		}
	}
	honoured := []map[string]string{
		{"RUNTIME_IGNOREDOTFILES": "true", "RUNTIME_WATCH_ROOT": "false"},
		{"USE_STATSD": "false", "DISABLE_STATS": "false", "QUOTA_MODE": "false"},
		{"STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT": "true", "REDIS_HEALTH_CHECK_ACTIVE_CONNECTION": "false"},
		{"REDIS_POOL_ON_EMPTY_BEHAVIOR": "wait"},
		{"REDIS_TLS": "true", "REDIS_TLS_CACERT": "ca"},
	}
	for _, env := range honoured {
		if _, w, err := parseRef(t, env); err != nil || len(w) > 0 {
			t.Errorf("%v: warnings %q, error %v; want none", env, w, err)
		}
	}
}

// TestReferenceVariablesMatchTheReference checks the list of variables
// read against names every reference settings.go has.
func TestReferenceVariablesMatchTheReference(t *testing.T) {
	vars := ReferenceVariables()
	for _, want := range []string{"RUNTIME_ROOT", "CONFIG_TYPE", "CONFIG_GRPC_XDS_SERVER_URL", "XDS_CLIENT_BACKOFF_JITTER",
		"GRPC_SERVER_USE_TLS", "GRPC_SERVER_TLS_CA_CERT", "REDIS_URL", "MEMCACHE_HOST_PORT", "USE_PROMETHEUS", "TRACING_SAMPLING_RATE",
		"LIMIT_RESPONSE_HEADERS_ENABLED", "MERGE_DOMAIN_CONFIG", "REDIS_PERSECOND_URL", "HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED"} {
		if !slices.Contains(vars, want) {
			t.Errorf("ReferenceVariables lacks %s", want)
		}
	}
	if slices.Contains(vars, "GLOBAL_SHADOW_MODE") {
		t.Error("GLOBAL_SHADOW_MODE is not a reference variable (the reference's field is GlobalShadowMode, its variable SHADOW_MODE)")
	}
}

// TestMigrationDocListsReferenceVariables checks that docs/migration.md
// has a row for every reference variable ParseReference reads.
func TestMigrationDocListsReferenceVariables(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "migration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, v := range ReferenceVariables() {
		if !strings.Contains(doc, "`"+v+"`") {
			t.Errorf("docs/migration.md has no `%s`", v)
		}
	}
	if strings.Contains(doc, "GLOBAL_SHADOW_MODE") {
		t.Error("docs/migration.md names GLOBAL_SHADOW_MODE, which the reference does not read")
	}
}

// ReferenceVariables returns the name of every reference variable that
// ParseReference reads, sorted; the docs test checks that each one is in
// docs/migration.md.
func ReferenceVariables() []string {
	seen := map[string]bool{}
	r := &refReader{getenv: func(name string) string { seen[name] = true; return "" }}
	r.read()
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
