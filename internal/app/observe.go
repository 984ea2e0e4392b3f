package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/tracing"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// tracer is the service's tracing, or nil when tracing is off: then its
// methods install nothing, so tracing costs nothing.
type tracer struct{ t *tracing.Tracer }

// newTracer starts tracing when s.Tracing.Enabled.
func newTracer(ctx context.Context, s settings.Serve, log *zap.Logger) (*tracer, error) {
	if !s.Tracing.Enabled {
		return nil, nil
	}
	t, err := tracing.New(ctx, s.Tracing, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	log.Info("tracing on: OpenTelemetry over OTLP", zap.String("protocol", s.Tracing.Protocol), zap.Float64("sampling_rate", s.Tracing.SamplingRate))
	return &tracer{t: t}, nil
}

// wrap returns store with a span per round trip, or store itself when
// tracing is off.
func (tr *tracer) wrap(name string, store limiter.Store) limiter.Store {
	if tr == nil {
		return store
	}
	return tr.t.Store(name, store)
}

// serverOptions returns the gRPC options that trace ShouldRateLimit, or
// none when tracing is off.
func (tr *tracer) serverOptions() []grpc.ServerOption {
	if tr == nil {
		return nil
	}
	return tr.t.ServerOptions()
}

// shutdown exports the last spans within s.Tracing.FlushTimeout.
func (tr *tracer) shutdown(s settings.Serve, log *zap.Logger) {
	if tr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Tracing.FlushTimeout)
	defer cancel()
	if err := tr.t.Shutdown(ctx); err != nil {
		log.Warn("tracing: the last spans were not exported", zap.Error(err))
	}
}

// metricsListener serves the metrics on a listener of their own at
// s.MetricsAddr (Envoy Gateway's PROMETHEUS_ADDR), at s.MetricsPath. It
// is nil when s.MetricsAddr is empty.
type metricsListener struct {
	lis net.Listener
	srv *http.Server
}

// listenMetrics opens the metrics listener, so that a busy port fails
// the start at once.
func listenMetrics(s settings.Serve, metrics http.Handler) (*metricsListener, error) {
	if s.MetricsAddr == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", s.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("app: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+s.MetricsPath, metrics)
	return &metricsListener{lis: lis, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// serve serves the metrics until the returned stop is called; stop lets
// scrapes in flight finish (within a few seconds) and returns after the
// server's goroutine has ended. An error that stops the listener sooner
// is logged: metrics never stop the service.
func (ml *metricsListener) serve(log *zap.Logger) (stop func()) {
	if ml == nil {
		return func() {}
	}
	log.Info("serving metrics on a listener of their own", zap.String("addr", ml.lis.Addr().String()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ml.srv.Serve(ml.lis); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", zap.Error(err))
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ml.srv.Shutdown(ctx) != nil {
			ml.srv.Close()
		}
		<-done
	}
}

// close closes the listener (a no-op once serve has run).
func (ml *metricsListener) close() {
	if ml != nil {
		ml.lis.Close()
	}
}

// unpinged hides a store's Ping from the health watcher.
type unpinged struct{ limiter.Store }

// healthOf returns what the health watcher pings and warms: the stack's
// store and probe, or, without s.HealthFollowsStore, a view of the store
// that cannot be pinged and nothing to warm, so that health stays SERVING
// while the store is down (the reference's
// REDIS_HEALTH_CHECK_ACTIVE_CONNECTION=false).
func healthOf(s settings.Serve, st *stack) (limiter.Store, storeProbe) {
	if s.HealthFollowsStore {
		return st.store, st.probe
	}
	probe := st.probe
	probe.warm = nil
	return unpinged{st.store}, probe
}
