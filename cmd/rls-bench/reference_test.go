package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestReferencePeerOnRedis installs the reference (envoyproxy/ratelimit,
// at the pinned version of bench/ensure-ratelimit.sh) when it is
// missing, runs it on a real redis-server as the matrix does, and checks
// that a short load gets answers with CPU figures for the service and
// the store. The first run installs it with `go install` (minutes);
// -short skips it.
func TestReferencePeerOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the reference may need a go install of several minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	bin, err := ensureReference(ctx, "", os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(os.Stderr)
	t.Cleanup(h.Close)
	env, err := startStore(h, "redis")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := startReference(ctx, h, bin, t.TempDir(), env.refEnv)
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultLoadConfig()
	c.Target, c.Concurrency, c.Connections = ref.GRPCAddr, 4, 1
	c.Duration, c.Warmup = time.Second, 200*time.Millisecond
	c.Descriptors, c.Keys = 3, strategyKeys(referenceStrategy)
	c.Probe = &CPUProbe{Service: []int{ref.Pid()}, Store: env.pids}
	res, err := RunLoad(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 || res.OK == 0 || res.Over > 0 {
		t.Fatalf("reference load: %+v", res)
	}
	if res.ServiceCPUUS <= 0 {
		t.Errorf("no service CPU measured: %+v", res)
	}
	// The reference counted in Redis: its keys are there.
	if n, err := env.redis.Do("DBSIZE"); err != nil || n == int64(0) {
		t.Errorf("redis DBSIZE after the reference's load: %v, %v", n, err)
	}
}
