package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Faults controls the server behind a store for RunFaults.
type Faults struct {
	// Pause freezes the server (SIGSTOP) and returns once it no longer
	// answers; Resume lets it run again.
	Pause, Resume func()
	// Stop kills the server; Start starts it again on the same address.
	Stop, Start func()
	// Timeout is the store's own timeout for one Apply.
	Timeout time.Duration
}

// slack is what a loaded machine may add to a store's timeout before an
// Apply returns: generous, since the point is that it returns at all.
const slack = 5 * time.Second

// RunFaults checks the error contract of limiter.Store against a real
// server that fails: a hung (paused) server and a dead (killed) one give
// errors wrapping limiter.ErrUnavailable within about the store's timeout,
// a caller that gave up gets an error that does not (it says nothing about
// the server), and the same store works again once the server is back.
// store must be a fresh store on the server f controls; RunFaults does
// not close it. The subtests run in order, not in parallel.
func RunFaults(t *testing.T, store limiter.Store, f Faults) {
	o := op(t, prefix(t)+"a", "fixed_window", perHour, 1)
	apply(t, store, now0, o)
	call := func(ctx context.Context) (time.Duration, error) {
		out := make([]strategies.Decision, 1)
		start := time.Now()
		err := store.Apply(ctx, now0, []limiter.Op{o}, out)
		return time.Since(start), err
	}
	t.Run("CallerGaveUp", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := call(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("Apply with a cancelled context = %v, want context.Canceled and not ErrUnavailable", err)
		}
		ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if _, err := call(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("Apply after the caller's deadline = %v, want context.DeadlineExceeded and not ErrUnavailable", err)
		}
	})
	t.Run("Hung", func(t *testing.T) {
		f.Pause()
		took, err := call(context.Background())
		f.Resume()
		if !errors.Is(err, limiter.ErrUnavailable) || errors.Is(err, limiter.ErrOverloaded) {
			t.Fatalf("Apply on a hung server = %v, want ErrUnavailable", err)
		}
		if took > 3*f.Timeout+slack {
			t.Fatalf("Apply on a hung server took %v, timeout %v", took, f.Timeout)
		}
		waitWorks(t, store, o)
	})
	t.Run("Dead", func(t *testing.T) {
		f.Stop()
		took, err := call(context.Background())
		if !errors.Is(err, limiter.ErrUnavailable) || errors.Is(err, limiter.ErrOverloaded) {
			f.Start()
			t.Fatalf("Apply with the server down = %v, want ErrUnavailable", err)
		}
		if took > 3*f.Timeout+slack {
			t.Errorf("Apply with the server down took %v, timeout %v", took, f.Timeout)
		}
		if p, ok := store.(limiter.Pinger); ok {
			if err := p.Ping(context.Background()); !errors.Is(err, limiter.ErrUnavailable) {
				t.Errorf("Ping with the server down = %v, want ErrUnavailable", err)
			}
		}
		f.Start()
		waitWorks(t, store, o)
	})
}

// waitWorks waits until an Apply of o succeeds again (a store may need a
// few calls to replace its broken connections); the test's own timeout
// bounds the wait.
func waitWorks(t *testing.T, store limiter.Store, o limiter.Op) {
	t.Helper()
	out := make([]strategies.Decision, 1)
	for {
		err := store.Apply(context.Background(), now0, []limiter.Op{o}, out)
		if err == nil {
			return
		}
		if !errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("Apply after the server came back = %v, want success or ErrUnavailable while reconnecting", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
