// Package breaker wraps a limiter.Store in a circuit breaker that tells an
// outage from overload, so that a dead store is not hammered while a slow
// or busy one keeps serving.
//
// The circuit opens on the failure rate over a sliding window (Window,
// kept as ten buckets) once the window holds at least MinCalls calls: a
// store that fails FailureRate of its calls or more is taken to be down.
// Only the store's own failures count: errors that wrap
// limiter.ErrUnavailable (no answer in time, connection errors,
// CLUSTERDOWN and the like). Errors that wrap limiter.ErrOverloaded
// (envoy-rls shed the call itself), limiter.ErrInvalidRequest, internal
// errors (a malformed state under one key) and the caller's own
// cancellation or deadline are neither a success nor a failure.
//
// While the circuit is open Apply fails at once with ErrOpen (which wraps
// limiter.ErrUnavailable). After a cool-down the circuit is half-open: at
// most HalfOpenCalls calls at a time go through to the store; HalfOpenCalls
// successes close it, one failure opens it again with the cool-down
// doubled, up to MaxCooldown.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/defaults"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// State is the circuit's state.
type State int32

// States of the circuit.
const (
	Closed State = iota
	Open
	HalfOpen
)

// States returns every state of the circuit, in the order of their
// values.
func States() []State { return []State{Closed, Open, HalfOpen} }

// String returns the state's name, as metrics and logs show it: "closed",
// "open" or "half_open".
func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	default:
		return "closed"
	}
}

// ErrOpen is returned (wrapping limiter.ErrUnavailable) while the circuit
// is open, and to the calls beyond HalfOpenCalls while it is half-open.
var ErrOpen = fmt.Errorf("circuit breaker open: %w", limiter.ErrUnavailable)

// Defaults of Options.
const (
	DefaultWindow        = 10 * time.Second
	DefaultMinCalls      = 100
	DefaultFailureRate   = 0.5
	DefaultCooldown      = 500 * time.Millisecond
	DefaultMaxCooldown   = 10 * time.Second
	DefaultHalfOpenCalls = 5
)

// buckets is the number of buckets the sliding window is kept in.
const buckets = 10

// Options configure a Store. The zero value of each field means its
// default.
type Options struct {
	// Window is the span over which the failure rate is measured
	// (default DefaultWindow).
	Window time.Duration
	// MinCalls is the fewest calls (successes and failures) in the window
	// before the rate may open the circuit (default DefaultMinCalls).
	MinCalls int
	// FailureRate, in (0, 1], is the share of failed calls in the window
	// that opens the circuit (default DefaultFailureRate).
	FailureRate float64
	// Cooldown is the first wait before the circuit turns half-open
	// (default DefaultCooldown); it doubles on each failed trial up to
	// MaxCooldown (default DefaultMaxCooldown).
	Cooldown    time.Duration
	MaxCooldown time.Duration
	// HalfOpenCalls is the most calls let through at a time while
	// half-open, and the number of successes that close the circuit
	// (default DefaultHalfOpenCalls).
	HalfOpenCalls int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnChange, when set, is called with each new state (outside the lock).
	OnChange func(State)
}

func (o Options) withDefaults() Options {
	o.Window = defaults.Positive(o.Window, DefaultWindow)
	o.MinCalls = defaults.Positive(o.MinCalls, DefaultMinCalls)
	o.FailureRate = defaults.Share(o.FailureRate, DefaultFailureRate)
	o.Cooldown = defaults.Positive(o.Cooldown, DefaultCooldown)
	o.MaxCooldown = max(defaults.Positive(o.MaxCooldown, DefaultMaxCooldown), o.Cooldown)
	o.HalfOpenCalls = defaults.Positive(o.HalfOpenCalls, DefaultHalfOpenCalls)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// bucket counts the calls of one slice of the window; epoch is the slice's
// number (time / width).
type bucket struct {
	epoch atomic.Int64
	calls atomic.Int64
	fails atomic.Int64
}

// Store is a limiter.Store guarded by a circuit breaker. It is safe for
// concurrent use. While the circuit is closed, a call takes no lock unless
// it fails.
type Store struct {
	next  limiter.Store
	opts  Options
	width int64 // nanoseconds per bucket

	state   atomic.Int32 // a State; written under mu
	rotate  sync.Mutex   // serialises bucket resets
	buckets [buckets]bucket

	mu       sync.Mutex
	gen      uint64 // bumped on every change of state: stale trial results are ignored
	cooldown time.Duration
	openedAt time.Time
	trials   int // half-open calls in flight
	passed   int // half-open successes
}

var (
	_ limiter.Store  = (*Store)(nil)
	_ limiter.Pinger = (*Store)(nil)
)

// New wraps next.
func New(next limiter.Store, opts Options) *Store {
	opts = opts.withDefaults()
	width := max(int64(opts.Window)/buckets, 1)
	return &Store{next: next, opts: opts, width: width, cooldown: opts.Cooldown}
}

// State returns the circuit's current state.
func (s *Store) State() State { return State(s.state.Load()) }

// outcome is what a call tells about the store's health.
type outcome int

const (
	neutral outcome = iota
	success
	failure
)

// classify tells what err, the result of a call made with ctx, says about
// the store.
func classify(ctx context.Context, err error) outcome {
	switch {
	case err == nil:
		return success
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return neutral // the caller gave up: no word on the store
	case errors.Is(err, limiter.ErrUnavailable):
		return failure
	default:
		return neutral
	}
}

// Apply forwards to the guarded store unless the circuit is open.
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	trial, gen, err := s.admit()
	if err != nil {
		return err
	}
	err = s.next.Apply(ctx, now, ops, out)
	s.record(trial, gen, classify(ctx, err))
	return err
}

// admit decides whether a call may go to the store; trial reports that it
// is one of the half-open calls, made in generation gen.
func (s *Store) admit() (trial bool, gen uint64, err error) {
	if State(s.state.Load()) == Closed {
		return false, 0, nil
	}
	s.mu.Lock()
	var changed bool
	switch State(s.state.Load()) {
	case Closed:
		s.mu.Unlock()
		return false, 0, nil
	case Open:
		if s.opts.Now().Sub(s.openedAt) < s.cooldown {
			s.mu.Unlock()
			return false, 0, ErrOpen
		}
		s.setState(HalfOpen)
		changed = true
	}
	// Half-open: a bounded number of trials at a time.
	if s.trials >= s.opts.HalfOpenCalls {
		s.mu.Unlock()
		return false, 0, ErrOpen
	}
	s.trials++
	gen = s.gen
	s.mu.Unlock()
	if changed {
		s.notify(HalfOpen)
	}
	return true, gen, nil
}

// setState moves the circuit to st; s.mu is held.
func (s *Store) setState(st State) {
	s.state.Store(int32(st))
	s.gen++
	s.trials, s.passed = 0, 0
	switch st {
	case Open:
		s.openedAt = s.opts.Now()
	case Closed:
		s.cooldown = s.opts.Cooldown
		s.resetWindow()
	}
}

func (s *Store) notify(st State) {
	if s.opts.OnChange != nil {
		s.opts.OnChange(st)
	}
}

// record updates the window and the circuit after a call.
func (s *Store) record(trial bool, gen uint64, o outcome) {
	if !trial {
		switch o {
		case success:
			s.bucket().calls.Add(1)
		case failure:
			s.fail()
		}
		return
	}
	s.mu.Lock()
	if gen != s.gen { // the circuit moved on since this trial began
		s.mu.Unlock()
		return
	}
	s.trials--
	var next State
	changed := false
	switch o {
	case success:
		if s.passed++; s.passed >= s.opts.HalfOpenCalls {
			s.setState(Closed)
			next, changed = Closed, true
		}
	case failure:
		s.cooldown = min(2*s.cooldown, s.opts.MaxCooldown)
		s.setState(Open)
		next, changed = Open, true
	}
	s.mu.Unlock()
	if changed {
		s.notify(next)
	}
}

// fail counts a failure of a call admitted while closed and opens the
// circuit when the window's failure rate reaches the threshold.
func (s *Store) fail() {
	b := s.bucket()
	b.fails.Add(1)
	b.calls.Add(1)
	if State(s.state.Load()) != Closed {
		return
	}
	calls, fails := s.window()
	if calls < int64(s.opts.MinCalls) || float64(fails) < s.opts.FailureRate*float64(calls) {
		return
	}
	s.mu.Lock()
	if State(s.state.Load()) != Closed {
		s.mu.Unlock()
		return
	}
	s.setState(Open)
	s.mu.Unlock()
	s.notify(Open)
}

// bucket returns the bucket of the current slice of the window, reset
// when it last counted an older slice.
func (s *Store) bucket() *bucket {
	e := s.opts.Now().UnixNano() / s.width
	b := &s.buckets[uint64(e)%buckets]
	if b.epoch.Load() != e {
		s.rotate.Lock()
		if b.epoch.Load() != e {
			b.calls.Store(0)
			b.fails.Store(0)
			b.epoch.Store(e)
		}
		s.rotate.Unlock()
	}
	return b
}

// Window returns the calls and the failures counted in the current window
// (both zero just after the circuit closed).
func (s *Store) Window() (calls, failures int64) { return s.window() }

// window sums the calls and failures of the buckets within the window.
func (s *Store) window() (calls, fails int64) {
	e := s.opts.Now().UnixNano() / s.width
	for i := range s.buckets {
		b := &s.buckets[i]
		if be := b.epoch.Load(); be > e-buckets && be <= e {
			calls += b.calls.Load()
			fails += b.fails.Load()
		}
	}
	return calls, fails
}

// resetWindow forgets every call counted so far.
func (s *Store) resetWindow() {
	s.rotate.Lock()
	for i := range s.buckets {
		s.buckets[i].calls.Store(0)
		s.buckets[i].fails.Store(0)
	}
	s.rotate.Unlock()
}

// Close closes the guarded store.
func (s *Store) Close() error { return s.next.Close() }

// Ping asks the guarded store whether its backend answers, when it can
// tell (limiter.Pinger); a store that cannot tell is taken to answer. A
// successful ping while the circuit is not closed closes it at once, so
// the service recovers as soon as the backend is back.
func (s *Store) Ping(ctx context.Context) error {
	p, ok := s.next.(limiter.Pinger)
	if !ok {
		return nil
	}
	err := p.Ping(ctx)
	if err == nil && s.State() != Closed {
		s.mu.Lock()
		changed := State(s.state.Load()) != Closed
		if changed {
			s.setState(Closed)
		}
		s.mu.Unlock()
		if changed {
			s.notify(Closed)
		}
	}
	return err
}
