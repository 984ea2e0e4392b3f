package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/redisstore"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// A Store for a Redis Cluster over TLS. New does not connect, so it
// succeeds while the cluster is unreachable; Ping tells whether it
// answers, and Apply fails with limiter.ErrUnavailable until it does.
func ExampleNew() {
	store, err := redisstore.New(context.Background(), redisstore.Options{
		Mode:     redisstore.ModeCluster,
		Addrs:    []string{"redis-0.redis:6379", "redis-1.redis:6379", "redis-2.redis:6379"},
		Password: "secret",
		TLS:      true,
		CAFile:   "/etc/envoy-rls/redis-ca.pem",
		Timeout:  10 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	gcra, _ := strategies.Lookup("gcra")
	lim, _ := gcra.Prepare(strategies.Limit{Requests: 100, Period: strategies.Second, Burst: 20})
	ops := []limiter.Op{{Key: "rls:api:client-42:gcra", Strategy: gcra, Limit: lim, Hits: 1}}
	out := make([]strategies.Decision, len(ops))
	// With server time (the default), now is ignored: Redis's clock rules.
	if err := store.Apply(context.Background(), 0, ops, out); err != nil {
		fmt.Println("store down:", err)
		return
	}
	fmt.Println(out[0].Allowed, out[0].Remaining)
}
