package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/breaker"
	"github.com/envoy-rls/envoy-rls/internal/overlimit"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memcachestore"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/stores/redisstore"
)

// This file is the second of Run's three parts: the store stack.

// stack is the store the limiter calls, built in a declared order from
// the bottom up:
//
//  1. the backend: memory, redis or memcached (newStore);
//  2. metrics around the backend's calls (telemetry.InstrumentStore);
//  3. the circuit breaker, which counts the backend's failures;
//  4. admission, which sheds work beyond --store-max-inflight
//     (steps 2 to 4: guardStore in resil.go). The memory store skips
//     steps 3 and 4: it answers in process, never fails as unavailable
//     and never waits, so a breaker and a bound on work in flight would
//     only cost each call two shared counters;
//  5. the local over-limit cache, when --local-cache-size is set.
//
// Its owner closes it with close, which closes every layer.
type stack struct {
	store limiter.Store    // the top of the stack
	cache *overlimit.Store // nil without a local cache
	probe storeProbe       // how the health watcher warms and names the backend
}

// newStack builds the store stack the settings select.
func newStack(ctx context.Context, s settings.Serve, m *telemetry.Metrics, log *zap.Logger) (*stack, error) {
	raw, err := newStore(ctx, s, log)
	if err != nil {
		return nil, err
	}
	if ms, ok := raw.(*memory.Store); ok {
		if err := m.RegisterMemoryStore(func() (int64, int64) { st := ms.Stats(); return st.Keys, st.Evictions }); err != nil {
			raw.Close()
			return nil, fmt.Errorf("app: %w", err)
		}
	}
	st := &stack{probe: newStoreProbe(s, raw)}
	if s.Store == settings.StoreMemory {
		m.SetBreakerState(s.Store, breaker.Closed.String())
		st.store = m.InstrumentStore(s.Store, raw)
	} else {
		st.store = guardStore(s, m, raw, log)
	}
	if s.LocalCacheSize > 0 {
		st.cache = overlimit.New(st.store, s.LocalCacheSize, m.LocalCacheHit)
		st.store = st.cache
	}
	return st, nil
}

// close closes the stack, and with it the backend.
func (st *stack) close(log *zap.Logger) {
	if err := st.store.Close(); err != nil {
		log.Warn("closing store", zap.Error(err))
	}
}

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
			TLS:         s.RedisTLS,
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

			MinIdleConns: s.Resil.RedisMinIdleConns,
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
