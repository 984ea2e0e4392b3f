package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/storetest"
)

// testTimeout is the Apply timeout of the conformance runs: generous,
// because -race and a shared CPU slow both the test and the server.
const testTimeout = 2 * time.Second

// testSlack is the expiry slack of the conformance runs: the tables drive
// a virtual clock while Redis expires keys on the real one, and a loaded
// machine can stall a test for more than the default second between two
// calls on one key, which would find it expired.
const testSlack = time.Minute

// open returns a Store for opts or fails t; it does not register Close.
func open(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return s
}

func TestConformanceSingle(t *testing.T) {
	srv := testservers.Redis(t)
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: testTimeout, ExpirySlack: testSlack})
	})
}

func TestConformanceCluster(t *testing.T) {
	c := testservers.RedisCluster(t)
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return open(t, Options{Mode: ModeCluster, Addrs: c.Addrs(), ClientTime: true, Timeout: testTimeout, ExpirySlack: testSlack})
	})
}

func TestConformanceSentinel(t *testing.T) {
	sn := testservers.RedisSentinel(t)
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return open(t, Options{Mode: ModeSentinel, Addrs: sn.Addrs(), MasterName: sn.MasterName, ClientTime: true, Timeout: testTimeout, ExpirySlack: testSlack})
	})
}

func TestConformanceTLS(t *testing.T) {
	srv := testservers.RedisTLS(t)
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return open(t, Options{
			URL:         "rediss://" + srv.Addr,
			Password:    srv.Password,
			CAFile:      srv.TLS.CAFile,
			CertFile:    srv.TLS.ClientCertFile,
			KeyFile:     srv.TLS.ClientKeyFile,
			ServerName:  "localhost",
			ClientTime:  true,
			Timeout:     testTimeout,
			ExpirySlack: testSlack,
		})
	})
}
