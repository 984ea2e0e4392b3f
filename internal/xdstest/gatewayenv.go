package xdstest

import "maps"

// GatewayEnv returns the environment Envoy Gateway gives its rate-limit
// Deployment (internal/infrastructure/kubernetes/ratelimit), with Redis,
// Prometheus and tracing configured, as it would be in a cluster; the
// entries of over are added or replace those (addresses, files, ports of
// a test).
func GatewayEnv(over map[string]string) map[string]string {
	env := map[string]string{
		"RUNTIME_ROOT":                       "/data",
		"RUNTIME_SUBDIRECTORY":               "ratelimit",
		"RUNTIME_IGNOREDOTFILES":             "true",
		"RUNTIME_WATCH_ROOT":                 "false",
		"LOG_LEVEL":                          "info",
		"USE_STATSD":                         "false",
		"CONFIG_TYPE":                        "GRPC_XDS_SOTW",
		"CONFIG_GRPC_XDS_SERVER_URL":         "envoy-gateway:18001",
		"CONFIG_GRPC_XDS_NODE_ID":            "envoy-ratelimit",
		"GRPC_SERVER_USE_TLS":                "true",
		"GRPC_SERVER_TLS_CERT":               "/certs/tls.crt",
		"GRPC_SERVER_TLS_KEY":                "/certs/tls.key",
		"GRPC_SERVER_TLS_CA_CERT":            "/certs/ca.crt",
		"CONFIG_GRPC_XDS_SERVER_USE_TLS":     "true",
		"CONFIG_GRPC_XDS_CLIENT_TLS_CERT":    "/certs/tls.crt",
		"CONFIG_GRPC_XDS_CLIENT_TLS_KEY":     "/certs/tls.key",
		"CONFIG_GRPC_XDS_SERVER_TLS_CACERT":  "/certs/ca.crt",
		"FORCE_START_WITHOUT_INITIAL_CONFIG": "true",
		"REDIS_SOCKET_TYPE":                  "tcp",
		"REDIS_URL":                          "redis.redis-system.svc.cluster.local:6379",
		"USE_PROMETHEUS":                     "true",
		"PROMETHEUS_ADDR":                    ":19001",
		"PROMETHEUS_MAPPER_YAML":             "/etc/statsd-exporter/conf.yaml",
		"TRACING_ENABLED":                    "true",
		"TRACING_SERVICE_NAME":               "envoy-ratelimit",
		"TRACING_SERVICE_NAMESPACE":          "envoy-gateway-system",
		"TRACING_SERVICE_INSTANCE_ID":        "envoy-ratelimit-7d9c-abcde",
		"TRACING_SAMPLING_RATE":              "0.5",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://otel-collector.monitoring.svc:4318",
	}
	maps.Copy(env, over)
	return env
}
