package limiter

import (
	"errors"
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// CheckStrategies reports, all at once (errors.Join), every limit of cfg
// whose strategy the store cannot run: canRun returns nil for a strategy
// the store runs and an error saying why not otherwise (for instance
// redisstore.CanRun for a strategy without a Lua runtime). A service
// calls it whenever it loads a config, before serving it, so that such a
// config is refused at load rather than failing every request on the
// limit. A nil cfg or canRun passes.
func CheckStrategies(cfg *descriptors.Config, canRun func(strategies.Strategy) error) error {
	if cfg == nil || canRun == nil {
		return nil
	}
	var errs []error
	seen := map[string]error{}
	for _, d := range cfg.Domains() {
		for _, r := range d.Rules() {
			for _, l := range r.Limits {
				if l.Strategy == nil {
					continue
				}
				name := l.Strategy.Name()
				err, ok := seen[name]
				if !ok {
					err = canRun(l.Strategy)
					seen[name] = err
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("limiter: %s:%d (rule %s): strategy %s: %w", d.File, r.Line, r.Path, name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
