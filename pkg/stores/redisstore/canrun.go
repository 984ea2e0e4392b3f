package redisstore

import (
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// CanRun reports whether the Redis store can run strategy s: it needs
// its Lua runtime (strategies.LuaStrategy), since every op steps inside
// Redis. The service checks each loaded config with it (see
// limiter.CheckStrategies), so a config naming a strategy without one is
// refused when it loads, not at request time.
func CanRun(s strategies.Strategy) error {
	if ls, ok := s.(strategies.LuaStrategy); ok && ls.LuaSource() != "" {
		return nil
	}
	return fmt.Errorf("redisstore: strategy %s has no Lua runtime, so the redis store cannot run it; use the memory or memcached store, or another strategy", s.Name())
}
