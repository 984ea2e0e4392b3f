package app

import (
	"context"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/admission"
	"github.com/envoy-rls/envoy-rls/internal/breaker"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// guardStore wraps the instrumented store in the circuit breaker and the
// admission bound, outermost first: admission (sheds work beyond
// --store-max-inflight with limiter.ErrOverloaded before it queues),
// breaker (fails fast while the store is down), instrumented raw store.
func guardStore(s settings.Serve, m *telemetry.Metrics, raw limiter.Store, log *zap.Logger) limiter.Store {
	m.SetBreakerState(s.Store, breaker.Closed.String())
	var b *breaker.Store
	b = breaker.New(m.InstrumentStore(s.Store, raw), breaker.Options{
		Window:      s.Resil.BreakerWindow,
		MinCalls:    s.Resil.BreakerMinCalls,
		FailureRate: s.Resil.BreakerFailureRate,
		OnChange: func(st breaker.State) {
			m.SetBreakerState(s.Store, st.String())
			calls, fails := b.Window()
			log.Warn("store circuit breaker", zap.String("store", s.Store), zap.Stringer("state", st),
				zap.Int64("window_calls", calls), zap.Int64("window_failures", fails))
		},
	})
	return admission.New(b, admission.Options{Capacity: int64(s.Resil.StoreMaxInflight), MaxWait: s.StoreTimeout, OnShed: m.StoreShed})
}

// warmer is implemented by stores that can open their connections ahead
// of traffic (redisstore.Store).
type warmer interface {
	Warm(ctx context.Context) error
}

// storeProbe is what the health watcher knows of the store besides its
// Pinger: how to warm it and where it is, for the log.
type storeProbe struct {
	warm func(ctx context.Context) error // nil: nothing to warm
	name string                          // --store
	addr string                          // its address(es), without credentials
}

// newStoreProbe describes raw, the unwrapped store, for the health watcher.
func newStoreProbe(s settings.Serve, raw limiter.Store) storeProbe {
	p := storeProbe{name: s.Store, addr: storeAddr(s)}
	if w, ok := raw.(warmer); ok {
		p.warm = w.Warm
	}
	return p
}

// storeAddr names the store's address(es) as configured, with any
// password in a URL redacted.
func storeAddr(s settings.Serve) string {
	switch s.Store {
	case "redis":
		if s.RedisAddrs != "" {
			return s.RedisAddrs
		}
		if u, err := url.Parse(s.RedisURL); err == nil {
			return u.Redacted()
		}
		return "(unparsable --redis-url)"
	case "memcached":
		return strings.Join(splitList(s.MemcachedServers), ",")
	default:
		return "in process"
	}
}
