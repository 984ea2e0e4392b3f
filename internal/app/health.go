package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// watchHealth keeps the service's health in step with the store: SERVING
// while the store answers its pings (and, the first time and after each
// outage, once its connections are warm: probe.warm), NOT_SERVING while it
// does not. A store that cannot be pinged is taken to answer. When the
// store does not answer at start, one warning names its address and the
// error. It returns when ctx is done.
func watchHealth(ctx context.Context, svc *server.Service, store limiter.Store, probe storeProbe, every time.Duration, log *zap.Logger) {
	p, ok := store.(limiter.Pinger)
	if !ok {
		svc.SetServing(true)
		return
	}
	serving, first := false, true
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := p.Ping(pctx)
		if err == nil && !serving && probe.warm != nil {
			err = probe.warm(pctx)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && !serving:
			log.Info("store answers; serving", zap.String("store", probe.name), zap.String("address", probe.addr))
		case err != nil && first:
			log.Warn("store unreachable at start; health is NOT_SERVING until it answers",
				zap.String("store", probe.name), zap.String("address", probe.addr), zap.Error(err))
		case err != nil && serving:
			log.Warn("store does not answer; health is NOT_SERVING", zap.String("store", probe.name), zap.String("address", probe.addr), zap.Error(err))
		case err != nil && !serving:
			log.Debug("store still does not answer", zap.Error(err))
		}
		first = false
		if serving != (err == nil) {
			serving = err == nil
			svc.SetServing(serving)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
