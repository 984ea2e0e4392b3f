package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// sharedRules give every strategy one key, each with a capacity of 60
// that barely refills during the test.
const sharedRules = `domain: edge
descriptors:
  - key: fixed_window
    rate_limit: {rate: "60/hour"}
  - key: sliding_window_log
    rate_limit: {rate: "60/hour", strategy: sliding_window_log}
  - key: sliding_window_counter
    rate_limit: {rate: "60/hour", strategy: sliding_window_counter}
  - key: token_bucket
    rate_limit: {rate: "60/hour", strategy: token_bucket}
  - key: gcra
    rate_limit: {rate: "60/hour", strategy: gcra, burst: 60}
  - key: leaky_bucket
    rate_limit: {rate: "60/hour", strategy: leaky_bucket}
`

// storeArgs are the serve flags of each shared store, started here.
func storeArgs(t *testing.T, store string) []string {
	switch store {
	case "redis":
		r := testservers.Redis(t)
		return []string{"--store", "redis", "--redis-url", "redis://" + r.Addr}
	case "redis-cluster":
		c := testservers.RedisCluster(t)
		return []string{"--store", "redis", "--redis-mode", "cluster", "--redis-addrs", strings.Join(c.Addrs(), ",")}
	case "memcached":
		pool := testservers.MemcachedPool(t, 2)
		return []string{"--store", "memcached", "--memcached-servers", strings.Join(testservers.MemcachedAddrs(pool), ",")}
	}
	t.Fatalf("unknown store %s", store)
	return nil
}

// Three replicas sharing one store, 64 concurrent clients on one key per
// strategy: exactly the capacity is admitted, across all replicas.
func TestReplicasShareOneLimit(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, sharedRules)
	for _, store := range []string{"redis", "redis-cluster", "memcached"} {
		t.Run(store, func(t *testing.T) {
			args := append([]string{"--config", rules, "--store-timeout", "2s", "--failure-mode", "error"}, storeArgs(t, store)...)
			var clients []rlsv3.RateLimitServiceClient
			for i := 0; i < 3; i++ {
				p := startServe(t, nil, args...)
				clients = append(clients, rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr)))
			}
			awayFromBoundary(time.Hour)
			for _, key := range []string{"fixed_window", "sliding_window_log", "sliding_window_counter", "token_bucket", "gcra", "leaky_bucket"} {
				var admitted, attempts atomic.Int64
				var wg sync.WaitGroup
				for c := 0; c < 64; c++ {
					wg.Add(1)
					go func(c int) {
						defer wg.Done()
						for attempts.Add(1) <= 180 {
							resp, err := clients[c%3].ShouldRateLimit(context.Background(), request("edge", []string{key, "shared"}))
							if err != nil {
								t.Errorf("%s: %v", key, err)
								return
							}
							if resp.OverallCode == rlsv3.RateLimitResponse_OK {
								admitted.Add(1)
							}
						}
					}(c)
				}
				wg.Wait()
				// 60 per hour refills one hit a minute; the test takes seconds.
				if got := admitted.Load(); got != 60 {
					t.Errorf("%s on %s: %d of 180 admitted across 3 replicas, want exactly 60", key, store, got)
				}
			}
		})
	}
}

// Stopping the store under load: answers keep coming within the store
// timeout, per the failure mode; health goes NOT_SERVING; when the store
// returns, decisions and health come back without a restart.
func TestStoreFailureAndRecovery(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, sharedRules)
	r := testservers.Redis(t)
	common := []string{"--config", rules, "--store", "redis", "--redis-url", "redis://" + r.Addr, "--store-timeout", "50ms"}
	allow := startServe(t, nil, append(common, "--failure-mode", "allow")...)
	deny := startServe(t, nil, append(common, "--failure-mode", "deny")...)
	errMode := startServe(t, nil, common...)
	clients := map[string]rlsv3.RateLimitServiceClient{
		"allow": rlsv3.NewRateLimitServiceClient(dial(t, allow.GRPCAddr)),
		"deny":  rlsv3.NewRateLimitServiceClient(dial(t, deny.GRPCAddr)),
		"error": rlsv3.NewRateLimitServiceClient(dial(t, errMode.GRPCAddr)),
	}
	ask := func(mode string) (*rlsv3.RateLimitResponse, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := clients[mode].ShouldRateLimit(ctx, request("edge", []string{"fixed_window", fmt.Sprint(time.Now().UnixNano())}))
		return resp, time.Since(start), err
	}
	for mode := range clients {
		if resp, _, err := ask(mode); err != nil || resp.Statuses[0].CurrentLimit == nil {
			t.Fatalf("%s before the fault: %v %v", mode, resp, err)
		}
	}

	r.Stop()
	var slowest time.Duration
	for i := 0; i < 20; i++ {
		for mode := range clients {
			resp, took, err := ask(mode)
			slowest = max(slowest, took)
			switch mode {
			case "allow":
				if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].CurrentLimit != nil {
					t.Fatalf("allow while down: %v %v", resp, err)
				}
			case "deny":
				if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
					t.Fatalf("deny while down: %v %v", resp, err)
				}
			case "error":
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("error mode while down: %v %v", resp, err)
				}
			}
		}
	}
	// Every answer came back within the store timeout plus scheduling
	// slack, however busy the machine (under the race detector, on shared
	// cores, a second of it is common); a hang would take the 5 s
	// deadline, and its code would fail the checks above.
	if slowest >= 4*time.Second {
		t.Errorf("slowest answer while the store was down: %v", slowest)
	}
	health := func(p *testservers.Service) int {
		resp, err := http.Get("http://" + p.HTTPAddr + "/healthcheck")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "health NOT_SERVING while the store is down", func() bool { return health(allow) == http.StatusServiceUnavailable })
	m := testservers.ScrapeMetrics(t, allow.HTTPAddr)
	if m[`envoy_rls_failure_mode_decisions_total{mode="allow"}`] < 20 {
		t.Errorf("failure-mode decisions: %v", m[`envoy_rls_failure_mode_decisions_total{mode="allow"}`])
	}

	r.Start()
	for mode := range clients {
		waitFor(t, mode+" decides again after the store returns", func() bool {
			resp, _, err := ask(mode)
			return err == nil && resp.Statuses[0].CurrentLimit != nil
		})
	}
	waitFor(t, "health SERVING after the store returns", func() bool { return health(allow) == http.StatusOK })
	t.Logf("slowest answer while the store was down: %v", slowest)
}

// The serve flags of every Redis topology reach the store: Sentinel, and
// TLS with a password (from the environment) and a client certificate.
func TestServeOnSentinelAndTLSRedis(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, sharedRules)
	sen := testservers.RedisSentinel(t)
	tlsRedis := testservers.RedisTLS(t)
	for name, tc := range map[string]struct {
		env  []string
		args []string
	}{
		"sentinel": {nil, []string{"--redis-mode", "sentinel", "--redis-master", sen.MasterName, "--redis-addrs", strings.Join(sen.Addrs(), ",")}},
		"tls": {[]string{"ENVOY_RLS_REDIS_PASSWORD=" + tlsRedis.Password}, []string{"--redis-url", "rediss://" + tlsRedis.Addr,
			"--redis-tls-ca", tlsRedis.TLS.CAFile, "--redis-tls-cert", tlsRedis.TLS.ClientCertFile, "--redis-tls-key", tlsRedis.TLS.ClientKeyFile,
			"--redis-tls-server-name", "localhost"}},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"--config", rules, "--store", "redis", "--store-timeout", "2s"}, tc.args...)
			p := startServe(t, tc.env, args...)
			client := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
			for i := 1; i <= 2; i++ {
				resp, err := client.ShouldRateLimit(context.Background(), request("edge", []string{"token_bucket", name}))
				if err != nil || resp.Statuses[0].CurrentLimit == nil || resp.Statuses[0].LimitRemaining != uint32(60-i) {
					t.Fatalf("request %d: %v %v", i, resp, err)
				}
			}
			if strings.Contains(p.Output(), tlsRedis.Password) {
				t.Fatal("the Redis password appears in the log")
			}
		})
	}
}
