package app

import (
	"fmt"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/redisstore"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// canRun returns the check of the strategies the selected store can run:
// nil for the stores that step every strategy in Go (memory, memcached).
func canRun(store string) func(strategies.Strategy) error {
	if store == settings.StoreRedis {
		return redisstore.CanRun
	}
	return nil
}

// checkConfig returns the check every rule set passes before it serves:
// it refuses rules that name a strategy the selected store cannot run,
// whatever source they came from.
func checkConfig(store string) func(*descriptors.Config) error {
	run := canRun(store)
	return func(cfg *descriptors.Config) error {
		if err := limiter.CheckStrategies(cfg, run); err != nil {
			return fmt.Errorf("app: the %s store cannot serve these rules: %w", store, err)
		}
		return nil
	}
}
