package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memcachestore"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/stores/redisstore"
)

// newStore builds the store the settings select. It does not wait for a
// remote store to answer: the service starts while its store is down.
func newStore(ctx context.Context, s settings.Serve) (limiter.Store, error) {
	switch s.Store {
	case "memory":
		return memory.New(memory.Options{MaxKeys: s.MemoryMaxKeys}), nil
	case "redis":
		st, err := redisstore.New(ctx, redisstore.Options{
			Mode:       s.RedisMode,
			URL:        s.RedisURL,
			Addrs:      splitList(s.RedisAddrs),
			MasterName: s.RedisMaster,
			Username:   s.RedisUsername,
			Password:   s.RedisPassword,
			DB:         s.RedisDB,
			CAFile:     s.RedisTLSCA,
			CertFile:   s.RedisTLSCert,
			KeyFile:    s.RedisTLSKey,
			ServerName: s.RedisTLSServerName,
			PoolSize:   s.RedisPoolSize,
			Timeout:    s.StoreTimeout,
			ClientTime: !s.RedisServerTime,
		})
		if err != nil {
			return nil, fmt.Errorf("app: redis store: %w", err)
		}
		return st, nil
	case "memcached":
		st, err := memcachestore.New(memcachestore.Options{Servers: splitList(s.MemcachedServers), Timeout: s.StoreTimeout})
		if err != nil {
			return nil, fmt.Errorf("app: memcached store: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("app: unknown store %q", s.Store)
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
