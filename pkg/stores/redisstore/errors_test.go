package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/storetest"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

func TestClassifyReplies(t *testing.T) {
	for msg, want := range map[string]error{
		"CLUSTERDOWN The cluster is down":                                   limiter.ErrUnavailable,
		"LOADING Redis is loading the dataset in memory":                    limiter.ErrUnavailable,
		"MASTERDOWN Link with MASTER is down":                               limiter.ErrUnavailable,
		"TRYAGAIN Multiple keys request during rehashing":                   limiter.ErrUnavailable,
		"READONLY You can't write against a read only replica":              limiter.ErrUnavailable,
		"BUSY Redis is busy running a script":                               limiter.ErrUnavailable,
		"OOM command not allowed when used memory > maxmemory":              limiter.ErrUnavailable,
		"NOSCRIPT No matching script":                                       nil,
		"WRONGTYPE Operation against a key holding the wrong kind of value": nil,
		"ERR user_script:1: malformed state":                                nil,
		"NOPERM this user has no permissions":                               nil,
	} {
		if _, got := classifyReply(msg); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}

func TestClassifyErrors(t *testing.T) {
	live := context.Background()
	storeTimedOut, cancel := context.WithTimeoutCause(live, 0, errStoreTimeout)
	defer cancel()
	callerCancelled, ccancel := context.WithCancel(live)
	ccancel()
	parentDeadline, pcancel := context.WithDeadline(live, time.Unix(1, 0))
	defer pcancel()
	callerDeadline, dcancel := context.WithTimeoutCause(parentDeadline, time.Hour, errStoreTimeout)
	defer dcancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want error // nil: neither ErrUnavailable nor ErrOverloaded
	}{
		{"store timeout", storeTimedOut, context.DeadlineExceeded, limiter.ErrUnavailable},
		{"caller cancelled", callerCancelled, context.Canceled, nil},
		{"caller deadline", callerDeadline, context.DeadlineExceeded, nil},
		{"pool timeout", live, redis.ErrPoolTimeout, limiter.ErrOverloaded},
		{"refused", live, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, limiter.ErrUnavailable},
		{"reset", live, &net.OpError{Op: "read", Err: syscall.ECONNRESET}, limiter.ErrUnavailable},
		{"eof", live, io.EOF, limiter.ErrUnavailable},
		{"closed", live, redis.ErrClosed, limiter.ErrUnavailable},
		{"sentinels", live, errors.New("redis: all sentinels specified in configuration are unreachable"), limiter.ErrUnavailable},
	} {
		err := unavailable(tc.ctx, time.Second, tc.err)
		un, ov := errors.Is(err, limiter.ErrUnavailable), errors.Is(err, limiter.ErrOverloaded)
		switch {
		case tc.want == nil && (un || ov),
			tc.want == limiter.ErrUnavailable && (!un || ov),
			tc.want == limiter.ErrOverloaded && (!ov || un):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v does not wrap %v", tc.name, err, tc.err)
		}
	}
}

// faults returns the storetest.Faults of srv for a store with timeout.
func faults(srv *testservers.Server, timeout time.Duration) storetest.Faults {
	return storetest.Faults{Pause: srv.Pause, Resume: srv.Resume, Stop: srv.Stop, Start: srv.Start, Timeout: timeout}
}

func TestFaultsBatched(t *testing.T) {
	srv := testservers.Redis(t)
	const timeout = 300 * time.Millisecond
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: timeout})
	defer s.Close()
	storetest.RunFaults(t, s, faults(srv, timeout))
}

func TestFaultsUnbatched(t *testing.T) {
	srv := testservers.Redis(t)
	const timeout = 300 * time.Millisecond
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: timeout, MaxBatch: 1})
	defer s.Close()
	storetest.RunFaults(t, s, faults(srv, timeout))
}

// A caller whose own deadline passes while Redis hangs gets an error that
// does not blame the store; calls that time out while still queued behind
// a hung pipeline are overloaded, not unavailable.
func TestHungRedisBlamesTheRightParty(t *testing.T) {
	srv := testservers.Redis(t)
	const timeout = 2 * time.Second
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: timeout, Pipelines: 1, MaxBatch: 2})
	defer s.Close()
	o := mkOp(t, "blame:a", "fixed_window", strategies.Limit{Requests: 1000, Period: strategies.Hour}, 1)
	call := func(ctx context.Context) error {
		return s.Apply(ctx, strategytest.T0, []limiter.Op{o}, make([]strategies.Decision, 1))
	}
	if err := call(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	// The caller's deadline (well before the store's timeout) passes.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := call(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("caller's deadline on a hung server: %v", err)
	}
	// The one pipeline (two calls a round trip) is stuck on the hung
	// server until its timeout; then it sends two more calls, and the
	// others time out while still queued.
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- call(context.Background()) }()
	}
	var unavailable, overloaded int
	for range cap(errs) {
		err := <-errs
		switch {
		case errors.Is(err, limiter.ErrOverloaded):
			overloaded++
		case errors.Is(err, limiter.ErrUnavailable):
			unavailable++
		default:
			t.Fatalf("call on a hung server: %v", err)
		}
	}
	if overloaded < 4 || unavailable > 4 {
		t.Fatalf("%d overloaded, %d unavailable", overloaded, unavailable)
	}
}

func TestSoloCalls(t *testing.T) {
	small := []limiter.Op{{Key: "k"}}
	many := make([]limiter.Op, 17)
	big := []limiter.Op{{Key: string(make([]byte, 20<<10))}}
	if solo(small) || !solo(many) || !solo(big) {
		t.Fatalf("solo: small %v, 17 ops %v, 20 KiB key %v", solo(small), solo(many), solo(big))
	}
}

// Warm leaves MinIdleConns connections open and idle, so that the first
// burst does not dial; it fails with ErrUnavailable while Redis is down.
func TestWarm(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: testTimeout, MinIdleConns: 4})
	defer s.Close()
	if err := s.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.single.PoolStats(); st.IdleConns < 4 {
		t.Fatalf("after Warm: %+v, want at least 4 idle connections", st)
	}
	srv.Stop()
	if err := s.Warm(context.Background()); !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Warm with Redis down: %v, want ErrUnavailable", err)
	}
}

func TestMinIdleConnsDefault(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want int
	}{
		{Options{}, DefaultPipelines + 1},
		{Options{Pipelines: 4}, 5},
		{Options{Mode: ModeCluster}, 2},
		{Options{MinIdleConns: 7}, 7},
		{Options{MinIdleConns: 7, PoolSize: 3}, 3},
	} {
		if got := tc.opts.minIdleConns(); got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.opts, got, tc.want)
		}
	}
}
