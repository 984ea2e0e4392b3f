package admission

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// gated is a store whose calls block until the test opens the gate; it
// tracks the weight in flight inside it.
type gated struct {
	gate     chan struct{}
	entered  chan int64
	inflight atomic.Int64
	peak     atomic.Int64
}

func newGated() *gated { return &gated{gate: make(chan struct{}), entered: make(chan int64, 1024)} }

func (g *gated) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	w := Weight(ops)
	n := g.inflight.Add(w)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	g.entered <- w
	<-g.gate
	g.inflight.Add(-w)
	return nil
}

func (g *gated) Close() error { return nil }

func ops(n int) []limiter.Op {
	o := make([]limiter.Op, n)
	for i := range o {
		o[i].Key = "k"
	}
	return o
}

// run starts a call of n ops in a goroutine and returns its result channel.
func run(ctx context.Context, s *Store, n int) chan error {
	c := make(chan error, 1)
	go func() { c <- s.Apply(ctx, 0, ops(n), make([]strategies.Decision, n)) }()
	return c
}

func TestWeight(t *testing.T) {
	big := []limiter.Op{{Key: strings.Repeat("x", 4096)}, {Key: strings.Repeat("y", 1000)}}
	if got := Weight(big); got != 2+4 {
		t.Fatalf("weight %d, want 6", got)
	}
	if got := Weight(ops(3)); got != 3 {
		t.Fatalf("weight %d, want 3", got)
	}
}

// Heavy calls hold at most their share; the ones beyond it are shed at
// once with ErrOverloaded, while light calls still get in.
func TestHeavyCallsAreShedFirst(t *testing.T) {
	g := newGated()
	var shedHeavy atomic.Int64
	s := New(g, Options{Capacity: 100, HeavyWeight: 10, HeavyShare: 0.5, OnShed: func(h bool) {
		if h {
			shedHeavy.Add(1)
		}
	}})
	ctx := context.Background()
	h1, h2 := run(ctx, s, 20), run(ctx, s, 20)
	<-g.entered
	<-g.entered
	// A third heavy call exceeds the heavy share of 50.
	if err := s.Apply(ctx, 0, ops(20), make([]strategies.Decision, 20)); !errors.Is(err, limiter.ErrOverloaded) || !strings.Contains(err.Error(), "heavy") {
		t.Fatalf("third heavy call: %v", err)
	}
	// Light calls use the rest.
	var light []chan error
	for range 6 {
		light = append(light, run(ctx, s, 10))
		<-g.entered
	}
	if got := s.InFlight(); got != 100 {
		t.Fatalf("in flight %d, want 100", got)
	}
	close(g.gate)
	for _, c := range append([]chan error{h1, h2}, light...) {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if shedHeavy.Load() != 1 || s.InFlight() != 0 || g.peak.Load() > 100 {
		t.Fatalf("shed %d heavy, in flight %d, peak %d", shedHeavy.Load(), s.InFlight(), g.peak.Load())
	}
}

// Light calls that do not fit wait, first come first served, and run
// when room frees.
func TestLightCallsWaitForRoom(t *testing.T) {
	g := newGated()
	s := New(g, Options{Capacity: 10, HeavyWeight: 10, MaxWait: time.Hour})
	ctx := context.Background()
	first := run(ctx, s, 10)
	<-g.entered
	waiting := run(ctx, s, 5)
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiters.Len() == 1 })
	// A heavy call never jumps ahead of a waiting light one.
	if err := s.Apply(ctx, 0, ops(11), make([]strategies.Decision, 11)); !errors.Is(err, limiter.ErrOverloaded) {
		t.Fatalf("heavy call behind a waiter: %v", err)
	}
	g.gate <- struct{}{} // the first call returns
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if w := <-g.entered; w != 5 {
		t.Fatalf("entered with weight %d", w)
	}
	g.gate <- struct{}{}
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	if s.InFlight() != 0 {
		t.Fatalf("in flight %d", s.InFlight())
	}
}

// A waiter whose caller gives up is shed with ErrOverloaded and leaves no
// room taken; the waiters behind it move up.
func TestWaiterGivesUp(t *testing.T) {
	g := newGated()
	s := New(g, Options{Capacity: 10, HeavyWeight: 10, MaxWait: time.Hour, MaxWaiters: 2})
	bg := context.Background()
	first := run(bg, s, 8)
	<-g.entered
	ctx, cancel := context.WithCancel(bg)
	big := run(ctx, s, 5) // does not fit: waits
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiters.Len() == 1 })
	small := run(bg, s, 2) // would fit, but queues behind big
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiters.Len() == 2 })
	// The queue is full.
	if err := s.Apply(bg, 0, ops(1), make([]strategies.Decision, 1)); !errors.Is(err, limiter.ErrOverloaded) {
		t.Fatalf("third waiter: %v", err)
	}
	cancel()
	err := <-big
	if !errors.Is(err, limiter.ErrOverloaded) || !errors.Is(err, context.Canceled) || errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if w := <-g.entered; w != 2 { // small moved up and fits
		t.Fatalf("entered with weight %d", w)
	}
	close(g.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if s.InFlight() != 0 {
		t.Fatalf("in flight %d", s.InFlight())
	}
}

// Under a storm of mixed calls, some cancelled, the bound holds and no
// room leaks.
func TestStormKeepsTheBound(t *testing.T) {
	g := newGated()
	close(g.gate)
	g.entered = make(chan int64, 1<<16)
	s := New(g, Options{Capacity: 64, HeavyWeight: 8, MaxWait: time.Hour})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				ctx, cancel := context.WithCancel(context.Background())
				if j%7 == 0 {
					cancel()
				}
				n := 1 + (i*j)%20
				err := s.Apply(ctx, 0, ops(n), make([]strategies.Decision, n))
				cancel()
				if err != nil && !errors.Is(err, limiter.ErrOverloaded) {
					t.Error(err)
				}
				select {
				case <-g.entered:
				default:
				}
			}
		}()
	}
	wg.Wait()
	if s.InFlight() != 0 || g.peak.Load() > 64 {
		t.Fatalf("in flight %d, peak %d", s.InFlight(), g.peak.Load())
	}
}

// waitFor waits until cond holds (the test's own timeout bounds it).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}
