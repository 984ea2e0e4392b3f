package settings

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestInputDefaultsAndBounds(t *testing.T) {
	s, err := ParseServe([]string{"--config", "r.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Input{ConfigMaxBytes: 2 << 20, GRPCMaxConcurrentStreams: 1000, GRPCRecvTimeout: 10 * time.Second,
		HTTPReadTimeout: 10 * time.Second, HTTPWriteTimeout: 30 * time.Second, HTTPIdleTimeout: 2 * time.Minute, DebugWriteTimeout: 2 * time.Minute}
	if s.Input != want {
		t.Errorf("defaults %+v, want %+v", s.Input, want)
	}
	s, err = ParseServe([]string{"--config", "r.yaml", "--grpc-recv-timeout", "0"}, env(map[string]string{"ENVOY_RLS_CONFIG_MAX_BYTES": "100"}), io.Discard)
	if err != nil || s.Input.GRPCRecvTimeout != 0 || s.Input.ConfigMaxBytes != 100 {
		t.Errorf("--grpc-recv-timeout 0 and ENVOY_RLS_CONFIG_MAX_BYTES=100: %+v, %v", s.Input, err)
	}
	_, err = ParseServe([]string{"--config", "r.yaml", "--config-max-bytes", "0", "--grpc-max-concurrent-streams", "0", "--grpc-recv-timeout", "-1s",
		"--http-read-timeout", "0", "--http-write-timeout", "0", "--http-idle-timeout", "-1s", "--debug-write-timeout", "0"}, env(nil), io.Discard)
	for _, w := range []string{"--config-max-bytes", "--grpc-max-concurrent-streams", "--grpc-recv-timeout", "--http-read-timeout", "--http-write-timeout", "--http-idle-timeout", "--debug-write-timeout"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %s", err, w)
		}
	}
}
