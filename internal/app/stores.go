package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memcachestore"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/stores/redisstore"
)

// newStore builds the store the settings select. It does not wait for a
// remote store to answer: the service starts while its store is down.
func newStore(ctx context.Context, s settings.Serve, log *zap.Logger) (limiter.Store, error) {
	switch s.Store {
	case settings.StoreMemory:
		return memory.New(memory.Options{MaxKeys: s.MemoryMaxKeys}), nil
	case settings.StoreRedis:
		useRedisLogger(log)
		st, err := redisstore.New(ctx, redisstore.Options{
			Mode:        s.RedisMode,
			URL:         s.RedisURL,
			Addrs:       splitList(s.RedisAddrs),
			MasterName:  s.RedisMaster,
			Username:    s.RedisUsername,
			Password:    s.RedisPassword,
			DB:          s.RedisDB,
			CAFile:      s.RedisTLSCA,
			CertFile:    s.RedisTLSCert,
			KeyFile:     s.RedisTLSKey,
			ServerName:  s.RedisTLSServerName,
			PoolSize:    s.RedisPoolSize,
			Timeout:     s.StoreTimeout,
			ClientTime:  !s.RedisServerTime,
			Pipelines:   s.RedisPipelines,
			MaxBatch:    s.RedisMaxBatch,
			BatchWindow: s.RedisBatchWindow,
		})
		if err != nil {
			return nil, fmt.Errorf("app: redis store: %w", err)
		}
		return st, nil
	case settings.StoreMemcached:
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

// redisLogger routes go-redis's own messages (dial failures while Redis
// is down, for instance) to zap at debug level: the store's errors already
// reach the log once, through the circuit breaker and health watcher.
type redisLogger struct{ log *zap.SugaredLogger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) { l.log.Debugf(format, v...) }

// useRedisLogger installs l as go-redis's process-wide logger.
func useRedisLogger(l *zap.Logger) {
	redis.SetLogger(redisLogger{log: l.Named("go-redis").Sugar()})
}
