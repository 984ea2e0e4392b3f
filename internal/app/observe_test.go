package app

import (
	"context"
	"net/http"
	"testing"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
)

// TestTracingOffInstallsNothing checks that without --tracing the store
// is not wrapped and no gRPC option is added, so tracing costs nothing.
func TestTracingOffInstallsNothing(t *testing.T) {
	tr, err := newTracer(context.Background(), settings.Serve{}, zap.NewNop())
	if err != nil || tr != nil {
		t.Fatalf("newTracer without --tracing: %v, %v; want nil, nil", tr, err)
	}
	st := memory.New(memory.Options{})
	defer st.Close()
	if got := tr.wrap("memory", st); got != st {
		t.Errorf("wrap without tracing returned %T, want the store itself", got)
	}
	if opts := tr.serverOptions(); len(opts) != 0 {
		t.Errorf("%d gRPC options without tracing", len(opts))
	}
	tr.shutdown(settings.Serve{}, zap.NewNop())
}

// TestMetricsListenerOffAndBusy checks that no metrics listener opens
// without --metrics-addr, and that a busy address fails at once.
func TestMetricsListenerOffAndBusy(t *testing.T) {
	ml, err := listenMetrics(settings.Serve{}, http.NotFoundHandler())
	if err != nil || ml != nil {
		t.Fatalf("listenMetrics without an address: %v, %v", ml, err)
	}
	ml.serve(zap.NewNop())()
	ml.close()

	ml, err = listenMetrics(settings.Serve{MetricsAddr: "127.0.0.1:0", MetricsPath: "/metrics"}, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer ml.close()
	if _, err := listenMetrics(settings.Serve{MetricsAddr: ml.lis.Addr().String(), MetricsPath: "/metrics"}, http.NotFoundHandler()); err == nil {
		t.Error("a busy metrics address did not fail")
	}
}

// pinger is a store whose backend answers pings.
type pinger struct{ limiter.Store }

func (pinger) Ping(context.Context) error { return nil }

// TestHealthOf checks that without --health-follows-store the health
// watcher can neither ping nor warm the store, and with it can.
func TestHealthOf(t *testing.T) {
	st := memory.New(memory.Options{})
	defer st.Close()
	warm := func(context.Context) error { return nil }
	stk := &stack{store: pinger{st}, probe: storeProbe{warm: warm, name: "memory"}}
	if h, probe := healthOf(settings.Serve{HealthFollowsStore: true}, stk); probe.warm == nil {
		t.Error("--health-follows-store: the health watcher cannot warm the store")
	} else if _, ok := h.(limiter.Pinger); !ok {
		t.Error("--health-follows-store: the health watcher cannot ping the store")
	}
	h, probe := healthOf(settings.Serve{HealthFollowsStore: false}, stk)
	if _, ok := h.(limiter.Pinger); ok {
		t.Error("--health-follows-store=false: the health watcher still pings the store")
	}
	if probe.warm != nil || probe.name != "memory" {
		t.Errorf("--health-follows-store=false: probe %+v, want no warm-up and the store's name", probe)
	}
}
