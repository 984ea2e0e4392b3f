package settings

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvironmentFillsWhatFlagsDoNotSet(t *testing.T) {
	s, err := ParseServe([]string{"--config", "rules.yaml", "--grpc-addr", ":9000"}, env(map[string]string{
		"ENVOY_RLS_GRPC_ADDR":      ":1111", // the flag wins
		"ENVOY_RLS_HTTP_ADDR":      ":9001",
		"ENVOY_RLS_STORE_TIMEOUT":  "40ms",
		"ENVOY_RLS_SHADOW_MODE":    "true",
		"ENVOY_RLS_REDIS_PASSWORD": "s3cret",
		"ENVOY_RLS_GC_HEAP_FLOOR":  "0",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.GRPCAddr != ":9000" || s.HTTPAddr != ":9001" || s.StoreTimeout != 40*time.Millisecond || !s.ShadowMode || s.RedisPassword != "s3cret" || s.GCHeapFloor != 0 {
		t.Fatalf("%+v", s)
	}
	if s.Store != "memory" || s.FailureMode != "error" || s.DebugAddr != "127.0.0.1:6070" {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := ParseServe([]string{"--store", "redis", "--redis-mode", "cluster", "--failure-mode", "maybe", "--near-limit-ratio", "2", "--grpc-tls-cert", "c.pem", "--gc-heap-floor", "-1"}, env(map[string]string{"ENVOY_RLS_STORE_TIMEOUT": "soon"}), io.Discard)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"ENVOY_RLS_STORE_TIMEOUT", "--config is required", "needs --redis-addrs", `--failure-mode "maybe"`, "--near-limit-ratio", "--grpc-tls-cert and --grpc-tls-key", "--gc-heap-floor must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEnvNameAndFlagNames(t *testing.T) {
	if got := EnvName("redis-tls-server-name"); got != "ENVOY_RLS_REDIS_TLS_SERVER_NAME" {
		t.Fatal(got)
	}
	names := FlagNames()
	if len(names) < 30 || names[0] > names[len(names)-1] {
		t.Fatalf("flag names %v", names)
	}
}
