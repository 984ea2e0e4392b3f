package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// This file is the third of Run's three parts: the listeners, the
// servers on them (gRPC, HTTP, debug) and the health watcher.

// servers owns the gRPC, HTTP and debug servers on their listeners and
// the health watcher; serve runs them and stops them all.
type servers struct {
	svc    *server.Service
	grpc   *grpc.Server
	http   *http.Server
	debug  *http.Server // nil without a debug listener
	lis    *listeners
	health limiter.Store // pinged by the health watcher
	probe  storeProbe    // warms and names the store for it
	log    *zap.Logger
}

// newServers builds the service and its servers on lis; extra are more
// gRPC server options (tracing's).
func newServers(s settings.Serve, lis *listeners, lim *limiter.Limiter, store *stack, m *telemetry.Metrics, log *zap.Logger, extra ...grpc.ServerOption) (*servers, error) {
	gopts, err := grpcOptions(s, log)
	if err != nil {
		return nil, err
	}
	rg := server.NewRecvGuard(s.Input.GRPCRecvTimeout)
	gopts = append(gopts, rg.Options()...)
	lis.grpc = rg.Listener(lis.grpc)
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
		QuotaMetadata:   s.QuotaMetadata,
		Metrics:         m,
		DeadlineMargin:  s.Resil.DeadlineMargin,
	})
	if err != nil {
		return nil, err
	}
	v := &servers{svc: svc, lis: lis, log: log}
	v.health, v.probe = healthOf(s, store)
	v.grpc = grpc.NewServer(append(append(svc.GRPCOptions(), gopts...), extra...)...)
	svc.Register(v.grpc)
	if s.GRPCReflection {
		reflection.Register(v.grpc)
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", m.Handler())
	v.http = &http.Server{Handler: svc.HTTPHandler(metricsMux), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: s.Input.HTTPReadTimeout, WriteTimeout: s.Input.HTTPWriteTimeout, IdleTimeout: s.Input.HTTPIdleTimeout}
	if lis.debug != nil {
		v.debug = &http.Server{Handler: debugHandler(svc), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: s.Input.HTTPReadTimeout, WriteTimeout: s.Input.DebugWriteTimeout, IdleTimeout: s.Input.HTTPIdleTimeout}
	}
	return v, nil
}

// serve runs the servers and the health watcher until ctx is done or a
// server fails, then shuts down gracefully: health turns NOT_SERVING,
// in-flight calls finish (within shutdownTimeout), and serve returns
// after every goroutine it started has ended.
func (v *servers) serve(ctx context.Context, shutdownTimeout time.Duration) error {
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(1)
	go func() { defer wg.Done(); errc <- v.grpc.Serve(v.lis.grpc) }()
	serveHTTP := func(h *http.Server, l net.Listener) {
		defer wg.Done()
		if err := h.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}
	wg.Add(1)
	go serveHTTP(v.http, v.lis.http)
	if v.debug != nil {
		wg.Add(1)
		go serveHTTP(v.debug, v.lis.debug)
	}
	hctx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		watchHealth(hctx, v.svc, v.health, v.probe, time.Second, v.log)
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("app: server stopped: %w", runErr)
	}
	v.log.Info("shutting down")
	stopHealth()
	<-healthDone
	v.shutdown(shutdownTimeout)
	wg.Wait()
	return runErr
}

// shutdown stops the servers: the service first (health NOT_SERVING),
// then gRPC gracefully within timeout, then HTTP.
func (v *servers) shutdown(timeout time.Duration) {
	v.svc.Shutdown()
	stopped := make(chan struct{})
	go func() { v.grpc.GracefulStop(); close(stopped) }()
	shutCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-stopped:
	case <-shutCtx.Done():
		v.log.Warn("in-flight calls did not finish in time; closing them")
		v.grpc.Stop()
		<-stopped
	}
	for _, h := range []*http.Server{v.http, v.debug} {
		if h != nil && h.Shutdown(shutCtx) != nil {
			h.Close()
		}
	}
}

// logServing logs the addresses served on.
func (v *servers) logServing(s settings.Serve) {
	fields := []zap.Field{zap.String("grpc", v.lis.grpc.Addr().String()), zap.String("http", v.lis.http.Addr().String()),
		zap.String("store", s.Store), zap.Bool("grpc_tls", s.GRPCTLSCert != ""), zap.Bool("mtls", s.GRPCTLSClientCA != "")}
	if v.lis.debug != nil {
		fields = append(fields, zap.String("debug", v.lis.debug.Addr().String()))
	}
	v.log.Info("serving", fields...)
}
