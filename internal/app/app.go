// Package app wires `envoy-rls serve` together: rules, store, limiter,
// gRPC, HTTP and debug servers, and their orderly shutdown.
package app

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/envoy-rls/envoy-rls/internal/gctune"
	"github.com/envoy-rls/envoy-rls/internal/server"
	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/internal/tlsfiles"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// NewLogger returns a zap logger of the given level ("debug", "info",
// "warn", "error") and format ("json" or "console"). Repeated entries are
// sampled (see sampleFirst in logsample.go).
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
	return cfg.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return newSampler(c, sampleTick, sampleFirst, sampleThereafter)
	}))
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
// when the files change), keepalive, connection age, message size and
// the streams of one connection. (How long a stream may wait for its
// request is newServers' server.RecvGuard, on the listener too.)
func grpcOptions(s settings.Serve, log *zap.Logger) ([]grpc.ServerOption, error) {
	opts := append([]grpc.ServerOption(nil),
		// The transport's backstop; the service refuses requests above
		// --grpc-max-recv-bytes itself, with INVALID_ARGUMENT.
		grpc.MaxRecvMsgSize(2*s.GRPCMaxRecvBytes+64<<10),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  s.GRPCKeepalive,
			Timeout:               10 * time.Second,
			MaxConnectionAge:      connAge(s.GRPCMaxConnAge),
			MaxConnectionAgeGrace: s.GRPCMaxConnAgeGrace,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(uint32(s.Input.GRPCMaxConcurrentStreams)),
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
// config source stops, the store closes. It returns nil after a clean
// shutdown. It is made of three parts, each with an owner that starts
// and stops it: the config source (rules.go), the store stack
// (stores.go) and the listeners with their servers (servers.go).
func Run(ctx context.Context, s settings.Serve, log *zap.Logger) error {
	if gc := gctune.Start(s.GCHeapFloor); gc.Reason != "" {
		log.Info("garbage collector: heap floor not as requested", zap.Int64("requested", s.GCHeapFloor), zap.Int64("heap_floor", gc.Floor), zap.String("reason", gc.Reason))
	}
	m := telemetry.New(telemetry.Options{NearLimitRatio: s.NearLimitRatio, ReferenceMetrics: s.ReferenceMetrics})
	src, err := newSource(s, log)
	if err != nil {
		return err
	}
	lis, err := listen(s)
	if err != nil {
		return err
	}
	defer lis.close()
	ml, err := listenMetrics(s, m.Handler())
	if err != nil {
		return err
	}
	defer ml.close()
	tr, err := newTracer(ctx, s, log)
	if err != nil {
		return err
	}
	defer tr.shutdown(s, log)

	st, err := newStack(ctx, s, m, log)
	if err != nil {
		return err
	}
	st.store = tr.wrap(s.Store, st.store)
	defer st.close(log)
	// The limiter starts with no rules; the source fills them in.
	lim, err := limiter.New(nil, limiter.Options{Store: st.store, KeyPrefix: s.KeyPrefix, ShadowMode: s.ShadowMode})
	if err != nil {
		return err
	}
	rs := startRules(ctx, src, lim, st.cache, m, log)
	defer rs.stop()
	if err := rs.waitFirst(ctx, s.ForceStartWithoutConfig); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}

	v, err := newServers(s, lis, lim, st, m, log, tr.serverOptions()...)
	if err != nil {
		return err
	}
	defer ml.serve(log)()
	v.logServing(s)
	return v.serve(ctx, s.ShutdownTimeout)
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
