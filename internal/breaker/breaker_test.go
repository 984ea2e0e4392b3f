package breaker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// flaky is a store whose failure is switched by the test.
type flaky struct {
	mu    sync.Mutex
	fail  bool
	calls int
}

func (f *flaky) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail {
		return errors.Join(errors.New("connection refused"), limiter.ErrUnavailable)
	}
	for i := range out {
		out[i] = strategies.Decision{Allowed: true}
	}
	return nil
}

func (f *flaky) Close() error { return nil }

func (f *flaky) set(fail bool) { f.mu.Lock(); f.fail = fail; f.mu.Unlock() }

func (f *flaky) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

// clock is a fake clock advanced by the test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) add(d time.Duration)     { c.t = c.t.Add(d) }
func apply(s *Store) error               { return s.Apply(context.Background(), 0, nil, nil) }
func newClock() *clock                   { return &clock{t: time.Unix(1_700_000_000, 0)} }
func states(got *[]State) func(st State) { return func(st State) { *got = append(*got, st) } }

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	f, c := &flaky{fail: true}, newClock()
	var changes []State
	s := New(f, Options{Threshold: 3, Cooldown: time.Second, MaxCooldown: 4 * time.Second, Now: c.now, OnChange: states(&changes)})

	for i := 0; i < 3; i++ {
		if err := apply(s); !errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if s.State() != Open {
		t.Fatalf("after 3 failures: %v", s.State())
	}
	// Open: calls fail fast without reaching the store.
	before := f.count()
	if err := apply(s); !errors.Is(err, ErrOpen) || f.count() != before {
		t.Fatalf("open call: %v, store calls %d→%d", err, before, f.count())
	}
	// After the cool-down one probe goes through; it fails, the cool-down doubles.
	c.add(time.Second)
	if err := apply(s); errors.Is(err, ErrOpen) || f.count() != before+1 {
		t.Fatalf("probe: %v", err)
	}
	c.add(time.Second)
	if err := apply(s); !errors.Is(err, ErrOpen) {
		t.Fatalf("cool-down should have doubled: %v", err)
	}
	c.add(time.Second)
	f.set(false)
	if err := apply(s); err != nil {
		t.Fatalf("recovering probe: %v", err)
	}
	if s.State() != Closed {
		t.Fatalf("after a good probe: %v", s.State())
	}
	want := []State{Open, HalfOpen, Open, HalfOpen, Closed}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
}

func TestBreakerOneProbeAtATime(t *testing.T) {
	f, c := &flaky{fail: true}, newClock()
	s := New(f, Options{Threshold: 1, Cooldown: time.Second, Now: c.now})
	_ = apply(s)
	c.add(time.Second)
	if p, err := s.admit(); !p || err != nil {
		t.Fatalf("first admit: %v %v", p, err)
	}
	if _, err := s.admit(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second admit while probing: %v", err)
	}
}

func TestBreakerSuccessResetsFailures(t *testing.T) {
	f := &flaky{}
	s := New(f, Options{Threshold: 2, Now: newClock().now})
	for i := 0; i < 10; i++ {
		f.set(i%2 == 0) // never two failures in a row
		_ = apply(s)
	}
	if s.State() != Closed {
		t.Fatalf("state %v", s.State())
	}
}

// A healthy circuit under concurrent load stays closed and loses no call.
func TestBreakerConcurrent(t *testing.T) {
	f := &flaky{}
	s := New(f, Options{Threshold: 3, Now: newClock().now})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if err := apply(s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s.State() != Closed || f.count() != 4000 {
		t.Fatalf("state %v, store calls %d", s.State(), f.count())
	}
	// One failure takes the slow path; a success makes it healthy again.
	f.set(true)
	_ = apply(s)
	if s.healthy.Load() {
		t.Fatal("healthy after a failure")
	}
	f.set(false)
	_ = apply(s)
	if !s.healthy.Load() || s.State() != Closed {
		t.Fatal("not healthy after a success")
	}
}
