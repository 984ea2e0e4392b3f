// Package breaker wraps a limiter.Store in a circuit breaker, so that a
// dead store is not hammered: after Threshold consecutive failures the
// circuit opens and Apply fails at once with limiter.ErrUnavailable; after
// a cool-down one call goes through as a probe (half-open), and its
// success closes the circuit again. The cool-down doubles on each failed
// probe up to MaxCooldown.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// State is the circuit's state.
type State int

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
// is open.
var ErrOpen = fmt.Errorf("circuit breaker open: %w", limiter.ErrUnavailable)

// Options configure a Store. The zero value of each field means its
// default.
type Options struct {
	Threshold   int           // consecutive failures that open the circuit (default 5)
	Cooldown    time.Duration // first wait before a probe (default 500ms)
	MaxCooldown time.Duration // longest wait (default 10s)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnChange, when set, is called with each new state (outside the lock).
	OnChange func(State)
}

// Store is a limiter.Store guarded by a circuit breaker. It is safe for
// concurrent use.
type Store struct {
	next limiter.Store
	opts Options

	// healthy is state == Closed with no failure counted: the common case,
	// in which Apply takes no lock.
	healthy atomic.Bool

	mu       sync.Mutex
	state    State
	failures int
	cooldown time.Duration
	openedAt time.Time
	probing  bool
}

var _ limiter.Store = (*Store)(nil)

// New wraps next.
func New(next limiter.Store, opts Options) *Store {
	if opts.Threshold <= 0 {
		opts.Threshold = 5
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = 500 * time.Millisecond
	}
	if opts.MaxCooldown < opts.Cooldown {
		opts.MaxCooldown = 10 * time.Second
		if opts.MaxCooldown < opts.Cooldown {
			opts.MaxCooldown = opts.Cooldown
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{next: next, opts: opts, cooldown: opts.Cooldown}
	s.healthy.Store(true)
	return s
}

// State returns the circuit's current state.
func (s *Store) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Apply forwards to the guarded store unless the circuit is open.
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	probe, err := s.admit()
	if err != nil {
		return err
	}
	err = s.next.Apply(ctx, now, ops, out)
	// A cancelled caller says nothing about the store's health.
	if err != nil && ctx.Err() != nil && !errors.Is(err, limiter.ErrUnavailable) {
		s.release(probe)
		return err
	}
	s.record(probe, err == nil)
	return err
}

// admit decides whether a call may go to the store; probe reports that it
// is the half-open probe.
func (s *Store) admit() (probe bool, err error) {
	if s.healthy.Load() {
		return false, nil
	}
	s.mu.Lock()
	switch s.state {
	case Closed:
		s.mu.Unlock()
		return false, nil
	case Open:
		if s.opts.Now().Sub(s.openedAt) < s.cooldown {
			s.mu.Unlock()
			return false, ErrOpen
		}
		s.state, s.probing = HalfOpen, true
		s.mu.Unlock()
		if s.opts.OnChange != nil {
			s.opts.OnChange(HalfOpen)
		}
		return true, nil
	default: // HalfOpen: one probe at a time
		defer s.mu.Unlock()
		if s.probing {
			return false, ErrOpen
		}
		s.probing = true
		return true, nil
	}
}

func (s *Store) release(probe bool) {
	if !probe {
		return
	}
	s.mu.Lock()
	s.probing = false
	s.mu.Unlock()
}

// record updates the circuit after a call.
func (s *Store) record(probe, ok bool) {
	if ok && !probe && s.healthy.Load() {
		return // nothing to change
	}
	var changed bool
	var st State
	s.mu.Lock()
	if probe {
		s.probing = false
	}
	prev := s.state
	switch {
	case ok:
		s.failures = 0
		s.cooldown = s.opts.Cooldown
		s.state = Closed
	case probe:
		s.cooldown = min(2*s.cooldown, s.opts.MaxCooldown)
		s.state, s.openedAt = Open, s.opts.Now()
	default:
		s.failures++
		if s.state == Closed && s.failures >= s.opts.Threshold {
			s.state, s.openedAt = Open, s.opts.Now()
		}
	}
	changed, st = prev != s.state, s.state
	s.healthy.Store(s.state == Closed && s.failures == 0)
	s.mu.Unlock()
	if changed && s.opts.OnChange != nil {
		s.opts.OnChange(st)
	}
}

// Close closes the guarded store.
func (s *Store) Close() error { return s.next.Close() }

// Ping asks the guarded store whether its backend answers, when it can
// tell (limiter.Pinger); a store that cannot tell is taken to answer. A
// successful ping while the circuit is open closes it at once, so the
// service recovers as soon as the backend is back.
func (s *Store) Ping(ctx context.Context) error {
	p, ok := s.next.(limiter.Pinger)
	if !ok {
		return nil
	}
	err := p.Ping(ctx)
	if err == nil && s.State() != Closed {
		s.record(false, true)
	}
	return err
}
