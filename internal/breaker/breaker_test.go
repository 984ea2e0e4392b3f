package breaker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// scripted is a store whose next error is set by the test.
type scripted struct {
	mu    sync.Mutex
	err   error
	calls int
	pings error
}

func (f *scripted) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return f.err
	}
	for i := range out {
		out[i] = strategies.Decision{Allowed: true}
	}
	return nil
}

func (f *scripted) Close() error { return nil }

func (f *scripted) Ping(context.Context) error { f.mu.Lock(); defer f.mu.Unlock(); return f.pings }

func (f *scripted) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func (f *scripted) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

var (
	errDown       = fmt.Errorf("dial tcp: connection refused: %w", limiter.ErrUnavailable)
	errShed       = fmt.Errorf("queue full: %w", limiter.ErrOverloaded)
	errClient     = fmt.Errorf("window overflows: %w", limiter.ErrInvalidRequest)
	errMalformed  = errors.New("malformed state under key k")
	errTimeoutCtx = fmt.Errorf("waiting for redis: %w", context.DeadlineExceeded)
)

// clock is a fake clock advanced by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Unix(1_700_000_000, 0)} }
func apply(s *Store) error           { return s.Apply(context.Background(), 0, nil, nil) }

// recorder collects the states OnChange reports.
type recorder struct {
	mu  sync.Mutex
	got []State
}

func (r *recorder) on(st State) { r.mu.Lock(); r.got = append(r.got, st); r.mu.Unlock() }
func (r *recorder) states() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestOpensOnFailureRateOnlyAfterMinCalls(t *testing.T) {
	f, c := &scripted{err: errDown}, newClock()
	s := New(f, Options{MinCalls: 10, FailureRate: 0.5, Now: c.now})
	for i := range 9 {
		if err := apply(s); !errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
		if s.State() != Closed {
			t.Fatalf("open after %d calls, below MinCalls", i+1)
		}
	}
	_ = apply(s)
	if s.State() != Open {
		t.Fatalf("state after 10 failures of 10: %v", s.State())
	}
	before := f.count()
	if err := apply(s); !errors.Is(err, ErrOpen) || !errors.Is(err, limiter.ErrUnavailable) || f.count() != before {
		t.Fatalf("open call: %v, store calls %d→%d", err, before, f.count())
	}
}

// A store that fails a minority of calls (slowness under the timeout on a
// busy machine) never opens the circuit.
func TestMinorityOfFailuresKeepsItClosed(t *testing.T) {
	f, c := &scripted{}, newClock()
	s := New(f, Options{Now: c.now})
	for i := range 10_000 {
		if i%5 == 0 || i%5 == 2 { // 40 % failures, below the default 50 %
			f.set(errDown)
		} else {
			f.set(nil)
		}
		_ = apply(s)
		c.add(time.Millisecond)
	}
	if s.State() != Closed {
		t.Fatalf("state %v after 40%% failures", s.State())
	}
}

// Failures older than the window are forgotten.
func TestWindowSlides(t *testing.T) {
	f, c := &scripted{}, newClock()
	s := New(f, Options{Window: 10 * time.Second, MinCalls: 10, FailureRate: 0.5, Now: c.now})
	f.set(errDown)
	for range 9 {
		_ = apply(s)
	}
	c.add(11 * time.Second)
	for range 9 {
		_ = apply(s)
	}
	if s.State() != Closed {
		t.Fatalf("9 + 9 failures in windows apart opened the circuit")
	}
	_ = apply(s) // 10 failures within the window
	if s.State() != Open {
		t.Fatalf("state %v", s.State())
	}
}

// Only the store's own failures count: overload, client errors, malformed
// state and the caller's own cancellation or deadline never open it.
func TestCountsOnlyUnavailable(t *testing.T) {
	f, c := &scripted{}, newClock()
	s := New(f, Options{MinCalls: 5, Now: c.now})
	for _, err := range []error{errShed, errClient, errMalformed} {
		f.set(err)
		for range 50 {
			if got := apply(s); !errors.Is(got, err) {
				t.Fatalf("error %v, want %v", got, err)
			}
		}
	}
	// The caller's deadline passed, or the caller cancelled.
	f.set(errTimeoutCtx)
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	for range 50 {
		_ = s.Apply(ctx, 0, nil, nil)
	}
	f.set(fmt.Errorf("caller left: %w", context.Canceled))
	for range 50 {
		_ = s.Apply(cctx, 0, nil, nil)
	}
	if s.State() != Closed {
		t.Fatalf("state %v after errors that are not the store's", s.State())
	}
	if calls, fails := s.window(); calls != 0 || fails != 0 {
		t.Fatalf("window counted %d calls, %d failures", calls, fails)
	}
	// An unavailable store with a live caller does count.
	f.set(errDown)
	for range 5 {
		_ = apply(s)
	}
	if s.State() != Open {
		t.Fatalf("state %v after 5 unavailable", s.State())
	}
}

func TestHalfOpenLetsABoundedShareThrough(t *testing.T) {
	f, c := &scripted{err: errDown}, newClock()
	rec := &recorder{}
	s := New(f, Options{MinCalls: 2, Cooldown: time.Second, MaxCooldown: 4 * time.Second, HalfOpenCalls: 3, Now: c.now, OnChange: rec.on})
	_, _ = apply(s), apply(s)
	if s.State() != Open {
		t.Fatalf("state %v", s.State())
	}
	c.add(time.Second)
	var trials int
	for range 10 {
		trial, _, err := s.admit()
		if trial {
			trials++
		} else if !errors.Is(err, ErrOpen) {
			t.Fatalf("admit while half-open: %v", err)
		}
	}
	if trials != 3 || s.State() != HalfOpen {
		t.Fatalf("%d trials admitted (want 3), state %v", trials, s.State())
	}
	// One failed trial opens it again, with the cool-down doubled; the
	// results of the other trials of that round are ignored.
	gen := s.gen
	s.record(true, gen, failure)
	s.record(true, gen, success)
	s.record(true, gen, success)
	if s.State() != Open {
		t.Fatalf("state after a failed trial: %v", s.State())
	}
	c.add(time.Second)
	if err := apply(s); !errors.Is(err, ErrOpen) {
		t.Fatalf("cool-down should have doubled: %v", err)
	}
	c.add(time.Second)
	f.set(nil)
	for i := range 3 {
		if err := apply(s); err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
	}
	if s.State() != Closed {
		t.Fatalf("state after 3 good trials: %v", s.State())
	}
	want := []State{Open, HalfOpen, Open, HalfOpen, Closed}
	if got := rec.states(); !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	// Closing forgot the old failures: one new failure does not reopen.
	f.set(errDown)
	_ = apply(s)
	if s.State() != Closed {
		t.Fatalf("state %v: old failures were kept", s.State())
	}
}

// A neutral trial (overload, client error) frees its slot without deciding.
func TestNeutralTrialFreesItsSlot(t *testing.T) {
	f, c := &scripted{err: errDown}, newClock()
	s := New(f, Options{MinCalls: 1, HalfOpenCalls: 1, Cooldown: time.Second, Now: c.now})
	_ = apply(s)
	c.add(time.Second)
	f.set(errShed)
	for range 5 {
		if err := apply(s); !errors.Is(err, limiter.ErrOverloaded) {
			t.Fatalf("neutral trial: %v", err)
		}
	}
	if s.State() != HalfOpen {
		t.Fatalf("state %v", s.State())
	}
	f.set(nil)
	if err := apply(s); err != nil || s.State() != Closed {
		t.Fatalf("good trial: %v, state %v", err, s.State())
	}
}

func TestPingClosesTheCircuit(t *testing.T) {
	f, c := &scripted{err: errDown}, newClock()
	rec := &recorder{}
	s := New(f, Options{MinCalls: 1, Now: c.now, OnChange: rec.on})
	_ = apply(s)
	f.pings = errDown
	if err := s.Ping(context.Background()); err == nil || s.State() != Open {
		t.Fatalf("failed ping: %v, state %v", err, s.State())
	}
	f.pings = nil
	if err := s.Ping(context.Background()); err != nil || s.State() != Closed {
		t.Fatalf("good ping: %v, state %v", err, s.State())
	}
	if got, want := rec.states(), []State{Open, Closed}; !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// A healthy circuit under concurrent load stays closed and loses no call;
// failures racing with successes open it exactly once.
func TestConcurrent(t *testing.T) {
	f, c := &scripted{}, newClock()
	rec := &recorder{}
	s := New(f, Options{Now: c.now, OnChange: rec.on})
	run := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 500 {
					_ = apply(s)
				}
			}()
		}
		wg.Wait()
	}
	run()
	if s.State() != Closed || f.count() != 4000 {
		t.Fatalf("state %v, store calls %d", s.State(), f.count())
	}
	f.set(errDown)
	run()
	if got := rec.states(); !slices.Equal(got, []State{Open}) {
		t.Fatalf("changes %v, want one open", got)
	}
}

func BenchmarkApplyClosed(b *testing.B) {
	s := New(&scripted{}, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = s.Apply(ctx, 0, nil, nil)
		}
	})
}
