package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// watchHealth keeps the service's health in step with the store: SERVING
// while the store answers its pings, NOT_SERVING while it does not. A store
// that cannot be pinged is taken to answer. It returns when ctx is done.
func watchHealth(ctx context.Context, svc *server.Service, store limiter.Store, every time.Duration, log *zap.Logger) {
	p, ok := store.(limiter.Pinger)
	if !ok {
		svc.SetServing(true)
		return
	}
	serving := false
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := p.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && !serving:
			log.Info("store answers; serving")
		case err != nil && serving:
			log.Warn("store does not answer; health is NOT_SERVING", zap.Error(err))
		case err != nil && !serving:
			log.Debug("store still does not answer", zap.Error(err))
		}
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
