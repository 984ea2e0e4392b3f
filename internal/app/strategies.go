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

// loadConfig loads the rules at s.Config and refuses them when they name
// a strategy the selected store cannot run.
func loadConfig(s settings.Serve) (*descriptors.Config, error) {
	cfg, err := descriptors.Load(s.Config)
	if err != nil {
		return nil, err
	}
	if err := limiter.CheckStrategies(cfg, canRun(s.Store)); err != nil {
		return nil, fmt.Errorf("app: the %s store cannot serve these rules: %w", s.Store, err)
	}
	return cfg, nil
}
