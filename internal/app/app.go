// Package app wires `envoy-rls serve` together: rules, store, limiter,
// gRPC, HTTP and debug servers, and their orderly shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/envoy-rls/envoy-rls/internal/breaker"
	"github.com/envoy-rls/envoy-rls/internal/overlimit"
	"github.com/envoy-rls/envoy-rls/internal/reload"
	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/internal/tlsfiles"
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

// listeners are the sockets Run serves on, opened before anything starts
// so that a busy port fails at once.
type listeners struct{ grpc, http, debug net.Listener }

func listen(s settings.Serve) (*listeners, error) {
	var l listeners
	var err error
	if l.grpc, err = net.Listen("tcp", s.GRPCAddr); err != nil {
		return nil, fmt.Errorf("app: gRPC listener: %w", err)
	}
	if l.http, err = net.Listen("tcp", s.HTTPAddr); err != nil {
		l.close()
		return nil, fmt.Errorf("app: HTTP listener: %w", err)
	}
	if s.DebugAddr != "" {
		if l.debug, err = net.Listen("tcp", s.DebugAddr); err != nil {
			l.close()
			return nil, fmt.Errorf("app: debug listener: %w", err)
		}
	}
	return &l, nil
}

func (l *listeners) close() {
	for _, x := range []net.Listener{l.grpc, l.http, l.debug} {
		if x != nil {
			x.Close()
		}
	}
}

// grpcOptions builds the gRPC server's transport options: TLS (reloaded
// when the files change), keepalive, connection age, message size.
func grpcOptions(s settings.Serve, log *zap.Logger) ([]grpc.ServerOption, error) {
	opts := append([]grpc.ServerOption(nil),
		// The transport's backstop; the service refuses requests above
		// --grpc-max-recv-bytes itself, with INVALID_ARGUMENT.
		grpc.MaxRecvMsgSize(2*s.GRPCMaxRecvBytes+64<<10),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  s.GRPCKeepalive,
			Timeout:               10 * time.Second,
			MaxConnectionAge:      connAge(s.GRPCMaxConnAge),
			MaxConnectionAgeGrace: 30 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	if s.GRPCTLSCert != "" {
		tf, err := tlsfiles.NewServer(tlsfiles.Files{CertFile: s.GRPCTLSCert, KeyFile: s.GRPCTLSKey, ClientCAFile: s.GRPCTLSClientCA},
			func(err error) {
				log.Warn("gRPC TLS files changed but could not be loaded; keeping the previous ones", zap.Error(err))
			})
		if err != nil {
			return nil, fmt.Errorf("app: gRPC TLS: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tf.Config())))
	}
	return opts, nil
}

// connAge maps the flag's 0 ("never") to gRPC's infinity.
func connAge(d time.Duration) time.Duration {
	if d == 0 {
		return time.Duration(math.MaxInt64)
	}
	return d
}

// Run serves until ctx is done, then shuts down gracefully: health turns
// NOT_SERVING, in-flight calls finish (within s.ShutdownTimeout), the
// store closes. It returns nil after a clean shutdown.
func Run(ctx context.Context, s settings.Serve, log *zap.Logger) error {
	m := telemetry.New(telemetry.Options{NearLimitRatio: s.NearLimitRatio})
	// The watcher starts before the first load, so that no change between
	// the two is missed; lim is set before the watcher runs.
	var lim *limiter.Limiter
	var cache *overlimit.Store
	w, err := reload.New(reload.Options{Path: s.Config, Logger: log, OnChange: func() {
		cfg, err := loadConfig(s)
		if err != nil {
			m.ConfigLoadFailed()
			log.Error("config reload refused; the previous rules keep serving", zap.Error(err))
			return
		}
		lim.SetConfig(cfg)
		if cache != nil {
			cache.Reset()
		}
		m.ConfigLoaded(cfg.Rules(), time.Now())
		log.Info("config reloaded", zap.Int("domains", len(cfg.Domains())), zap.Int("rules", cfg.Rules()))
	}})
	if err != nil {
		return fmt.Errorf("app: watching %s: %w", s.Config, err)
	}
	defer w.Close()
	cfg, err := loadConfig(s)
	if err != nil {
		m.ConfigLoadFailed()
		return fmt.Errorf("app: loading %s: %w", s.Config, err)
	}
	m.ConfigLoaded(cfg.Rules(), time.Now())
	log.Info("config loaded", zap.String("path", s.Config), zap.Int("domains", len(cfg.Domains())), zap.Int("rules", cfg.Rules()))
	gopts, err := grpcOptions(s, log)
	if err != nil {
		return err
	}
	lis, err := listen(s)
	if err != nil {
		return err
	}
	defer lis.close()

	raw, err := newStore(ctx, s, log)
	if err != nil {
		return err
	}
	if ms, ok := raw.(*memory.Store); ok {
		if err := m.RegisterMemoryStore(func() (int64, int64) { st := ms.Stats(); return st.Keys, st.Evictions }); err != nil {
			raw.Close()
			return fmt.Errorf("app: %w", err)
		}
	}
	m.SetBreakerState(s.Store, breaker.Closed.String())
	var store limiter.Store = breaker.New(m.InstrumentStore(s.Store, raw), breaker.Options{
		OnChange: func(st breaker.State) {
			m.SetBreakerState(s.Store, st.String())
			log.Warn("store circuit breaker", zap.String("store", s.Store), zap.Stringer("state", st))
		},
	})
	if s.LocalCacheSize > 0 {
		cache = overlimit.New(store, s.LocalCacheSize, m.LocalCacheHit)
		store = cache
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Warn("closing store", zap.Error(err))
		}
	}()
	lim, err = limiter.New(cfg, limiter.Options{Store: store, KeyPrefix: s.KeyPrefix, ShadowMode: s.ShadowMode})
	if err != nil {
		return err
	}
	svc, err := server.New(server.Options{
		Limiter: lim,
		Logger:  log,
		Limits: server.Limits{MaxDescriptors: s.MaxDescriptors, MaxEntries: s.MaxEntries, MaxValueBytes: s.MaxValueBytes,
			MaxRequestBytes: s.GRPCMaxRecvBytes},
		FailureMode: s.FailureMode,
		Headers: server.Headers{Enabled: s.ResponseHeaders, Limit: s.HeaderLimit, Remaining: s.HeaderRemaining,
			Reset: s.HeaderReset, RetryAfter: s.HeaderRetry},
		OverLimitBody:   []byte(s.OverLimitBody),
		RequestMetadata: s.DynamicMetadata,
		Metrics:         m,
	})
	if err != nil {
		return err
	}

	g := grpc.NewServer(append(svc.GRPCOptions(), gopts...)...)
	svc.Register(g)
	if s.GRPCReflection {
		reflection.Register(g)
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{Handler: svc.HTTPHandler(metricsMux), ReadHeaderTimeout: 5 * time.Second}
	var ds *http.Server
	if lis.debug != nil {
		ds = &http.Server{Handler: debugHandler(svc), ReadHeaderTimeout: 5 * time.Second}
	}

	errc := make(chan error, 3)
	go func() { errc <- g.Serve(lis.grpc) }()
	serveHTTP := func(h *http.Server, l net.Listener) {
		if err := h.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}
	go serveHTTP(hs, lis.http)
	if ds != nil {
		go serveHTTP(ds, lis.debug)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := w.Run(wctx); err != nil {
			log.Error("config watcher stopped; hot reload is off", zap.Error(err))
		}
	}()
	defer func() { stopWatch(); <-watchDone }()
	go reloadOnSignal(wctx, w.Trigger)
	hctx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	go func() { defer close(healthDone); watchHealth(hctx, svc, store, time.Second, log) }()
	defer func() { stopHealth(); <-healthDone }()
	fields := []zap.Field{zap.String("grpc", lis.grpc.Addr().String()), zap.String("http", lis.http.Addr().String()),
		zap.String("store", s.Store), zap.Bool("grpc_tls", s.GRPCTLSCert != ""), zap.Bool("mtls", s.GRPCTLSClientCA != "")}
	if lis.debug != nil {
		fields = append(fields, zap.String("debug", lis.debug.Addr().String()))
	}
	log.Info("serving", fields...)

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
	for _, h := range []*http.Server{hs, ds} {
		if h != nil && h.Shutdown(shutCtx) != nil {
			h.Close()
		}
	}
	return runErr
}

// debugHandler serves pprof and /rlconfig on the debug port.
func debugHandler(svc *server.Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /rlconfig", svc.HandleRLConfig)
	return mux
}

// reloadOnSignal calls trigger on each SIGHUP until ctx is done.
func reloadOnSignal(ctx context.Context, trigger func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			trigger()
		}
	}
}
