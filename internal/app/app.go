// Package app wires `envoy-rls serve` together: rules, store, limiter,
// gRPC and HTTP servers, and their orderly shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
)

// NewLogger returns a zap logger of the given level ("debug", "info",
// "warn", "error") and format ("json" or "console").
func NewLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("app: log level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.DisableStacktrace = true
	return cfg.Build()
}

// newStore builds the store the settings select.
func newStore(s settings.Serve) (limiter.Store, error) {
	switch s.Store {
	case "memory":
		return memory.New(memory.Options{MaxKeys: s.MemoryMaxKeys}), nil
	default:
		return nil, fmt.Errorf("app: unknown store %q", s.Store)
	}
}

// Run serves until ctx is done, then shuts down gracefully: health turns
// NOT_SERVING, in-flight calls finish (within s.ShutdownTimeout), the
// store closes. It returns nil after a clean shutdown.
func Run(ctx context.Context, s settings.Serve, log *zap.Logger) error {
	cfg, err := descriptors.Load(s.Config)
	if err != nil {
		return fmt.Errorf("app: loading %s: %w", s.Config, err)
	}
	log.Info("config loaded", zap.String("path", s.Config), zap.Int("domains", len(cfg.Domains())), zap.Int("rules", cfg.Rules()))

	grpcLis, err := net.Listen("tcp", s.GRPCAddr)
	if err != nil {
		return fmt.Errorf("app: gRPC listener: %w", err)
	}
	httpLis, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("app: HTTP listener: %w", err)
	}

	store, err := newStore(s)
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Warn("closing store", zap.Error(err))
		}
	}()
	lim, err := limiter.New(cfg, limiter.Options{Store: store, KeyPrefix: s.KeyPrefix, ShadowMode: s.ShadowMode})
	if err != nil {
		return err
	}
	svc, err := server.New(server.Options{
		Limiter: lim,
		Logger:  log,
		Limits:  server.Limits{MaxDescriptors: s.MaxDescriptors, MaxEntries: s.MaxEntries, MaxValueBytes: s.MaxValueBytes},
	})
	if err != nil {
		return err
	}

	g := grpc.NewServer()
	svc.Register(g)
	hs := &http.Server{Handler: svc.HTTPHandler(nil), ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- g.Serve(grpcLis) }()
	go func() {
		if err := hs.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	hctx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	go func() { defer close(healthDone); watchHealth(hctx, svc, store, time.Second, log) }()
	defer func() { stopHealth(); <-healthDone }()
	log.Info("serving", zap.String("grpc", grpcLis.Addr().String()), zap.String("http", httpLis.Addr().String()), zap.String("store", s.Store))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("app: server stopped: %w", runErr)
	}
	log.Info("shutting down")
	stopHealth()
	<-healthDone
	svc.Shutdown()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	shutCtx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	select {
	case <-stopped:
	case <-shutCtx.Done():
		log.Warn("in-flight calls did not finish in time; closing them")
		g.Stop()
		<-stopped
	}
	if err := hs.Shutdown(shutCtx); err != nil {
		hs.Close()
	}
	return runErr
}
