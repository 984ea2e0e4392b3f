package server

import (
	"context"
	"errors"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// waiting returns the number of streams the guard keeps.
func (g *RecvGuard) waiting() int {
	n := 0
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		n += len(sh.waiting)
		sh.mu.Unlock()
	}
	return n
}

// Closed returns the number of connections the guard has closed.
func (g *RecvGuard) Closed() int64 { return g.closed.Load() }

// TestRecvGuardForgetsStreams checks that the guard keeps no stream once
// its request has arrived, forgets streams the client gave up on before
// sending without closing their connection, and
// lets its timer lapse when nothing waits: it holds nothing for streams
// that are gone.
func TestRecvGuardForgetsStreams(t *testing.T) {
	const d = time.Second
	g := NewRecvGuard(d)
	addr := serveGuarded(t, &countingStore{}, g)
	conn := testservers.DialGRPC(t, addr)
	client := rlsv3.NewRateLimitServiceClient(conn)
	for range 100 {
		if _, err := client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.waiting(); n != 0 {
		t.Errorf("%d streams kept after 100 answered calls, want 0", n)
	}

	// Streams the client abandons before sending anything: their receive
	// fails, which forgets them; their connection stays.
	ctx, cancel := context.WithCancel(context.Background())
	for range 50 {
		if _, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, rlsv3.RateLimitService_ShouldRateLimit_FullMethodName); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return g.waiting() > 0 })
	cancel()
	waitUntil(t, func() bool { return g.waiting() == 0 && !g.armed.Load() })
	if n := g.Closed(); n != 0 {
		t.Errorf("the guard closed %d connections for streams the client reset, want 0", n)
	}
	if _, err := client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}}); err != nil {
		t.Errorf("the connection after its reset streams were forgotten: %v", err)
	}
}

// waitUntil polls cond until it holds, failing the test after a minute
// (a hang, not a slow machine).
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	err := testservers.WaitFor(context.Background(), time.Minute, func(context.Context) error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		t.Fatal(err)
	}
}
