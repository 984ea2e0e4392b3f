package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/overlimit"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/source"
	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// This file is the first of Run's three parts: the config source, which
// feeds the limiter's rules. The store stack is in stores.go, the
// listeners in servers.go.

// newSource builds the config source the settings select.
func newSource(s settings.Serve, log *zap.Logger) (source.Source, error) {
	switch s.ConfigSource {
	case "", "file":
		return &source.File{Path: s.Config, Logger: log}, nil
	case "xds":
		return newXDSSource(s, log)
	default:
		return nil, fmt.Errorf("app: unknown config source %q", s.ConfigSource)
	}
}

// rules owns a running config source: it applies each rule set the
// source delivers to the limiter (and empties the over-limit cache,
// whose entries belong to the old rules), counts and logs loads and
// refusals, and waits for the source's goroutine when stopped.
type rules struct {
	src   source.Source
	lim   *limiter.Limiter
	cache *overlimit.Store // nil without a local cache
	m     *telemetry.Metrics
	log   *zap.Logger

	cancel context.CancelFunc
	done   chan struct{} // closed when the source's Run returned
	runErr error         // Run's error, read after done

	firstOnce sync.Once
	first     chan struct{} // closed at the first Apply or Refuse
	firstErr  error         // the first Refuse's error, read after first
	applied   bool          // owned by the source's goroutine
}

var _ source.Updates = (*rules)(nil)

// startRules runs src in a goroutine owned by the returned rules; call
// stop to end it.
func startRules(ctx context.Context, src source.Source, lim *limiter.Limiter, cache *overlimit.Store, m *telemetry.Metrics, log *zap.Logger) *rules {
	r := &rules{src: src, lim: lim, cache: cache, m: m, log: log.With(zap.String("source", src.Name())),
		done: make(chan struct{}), first: make(chan struct{})}
	ctx, r.cancel = context.WithCancel(ctx)
	go func() {
		defer close(r.done)
		if err := src.Run(ctx, r); err != nil {
			r.runErr = err
			r.log.Error("config source stopped; the last rules keep serving", zap.Error(err))
		}
	}()
	return r
}

// waitFirst waits until the source delivered its first rule set. With
// force it does not wait: the limiter serves no rules (every descriptor
// OK) until the first one arrives. It fails when the first rule set is
// refused or the source stops before delivering one.
func (r *rules) waitFirst(ctx context.Context, force bool) error {
	if force {
		r.log.Info("serving with no rules until the first config arrives")
		return nil
	}
	select {
	case <-r.first:
		if r.firstErr != nil {
			return fmt.Errorf("app: loading rules (%s): %w", r.src.Name(), r.firstErr)
		}
		return nil
	case <-r.done:
		if r.runErr != nil {
			return fmt.Errorf("app: loading rules (%s): %w", r.src.Name(), r.runErr)
		}
		return nil
	case <-ctx.Done():
		return nil
	}
}

// stop ends the source and waits for its goroutine.
func (r *rules) stop() {
	r.cancel()
	<-r.done
}

// Apply serves cfg.
func (r *rules) Apply(cfg *descriptors.Config) {
	r.lim.SetConfig(cfg)
	if r.cache != nil {
		r.cache.Reset()
	}
	r.m.ConfigLoaded(cfg.Rules(), time.Now())
	msg := "config reloaded"
	if !r.applied {
		msg = "config loaded"
	}
	r.applied = true
	r.log.Info(msg, zap.Int("domains", len(cfg.Domains())), zap.Int("rules", cfg.Rules()))
	r.firstOnce.Do(func() { close(r.first) })
}

// Refuse counts and logs a refused rule set.
func (r *rules) Refuse(err error) {
	r.m.ConfigLoadFailed()
	r.firstOnce.Do(func() { r.firstErr = err; close(r.first) })
	if r.applied {
		r.log.Error("config refused; the previous rules keep serving", zap.Error(err))
	} else {
		r.log.Error("config refused; no rules are served yet", zap.Error(err))
	}
}
