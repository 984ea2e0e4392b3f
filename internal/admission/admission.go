// Package admission bounds the store work in flight, so that one client's
// heavy requests cannot starve the others: a limiter.Store wrapper with a
// weighted semaphore whose weight is the store work a call asks for (its
// ops, plus one per KiB of keys).
//
// Calls that fit run at once. Heavy calls (weight above Options.HeavyWeight)
// together hold at most Options.HeavyShare of the capacity and are shed at
// once when they do not fit; light calls that do not fit wait, first come
// first served, for room (up to Options.MaxWait or their deadline, and at
// most Options.MaxWaiters of them), and are shed after that. A shed call
// fails with an error wrapping limiter.ErrOverloaded: it never reached the
// store, so a circuit breaker does not count it.
package admission

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/defaults"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Defaults of Options.
const (
	DefaultCapacity    = 2048
	DefaultHeavyWeight = 16
	DefaultHeavyShare  = 0.25
	DefaultMaxWait     = 100 * time.Millisecond
	DefaultMaxWaiters  = 1024
)

// Options configure a Store. The zero value of each field means its
// default.
type Options struct {
	// Capacity is the store work in flight at once, in weight units (one
	// per op, plus one per KiB of keys). Default DefaultCapacity.
	Capacity int64
	// HeavyWeight is the weight above which a call is heavy. Default
	// DefaultHeavyWeight.
	HeavyWeight int64
	// HeavyShare, in (0, 1], is the share of Capacity heavy calls may hold
	// together. Default DefaultHeavyShare.
	HeavyShare float64
	// MaxWait is the longest a light call waits for room (its deadline
	// may end the wait sooner). Default DefaultMaxWait.
	MaxWait time.Duration
	// MaxWaiters is the most light calls waiting at once; more are shed.
	// Default DefaultMaxWaiters.
	MaxWaiters int
	// OnShed, when set, is called for each shed call.
	OnShed func(heavy bool)
}

func (o Options) withDefaults() Options {
	o.Capacity = defaults.Positive(o.Capacity, DefaultCapacity)
	o.HeavyWeight = defaults.Positive(o.HeavyWeight, DefaultHeavyWeight)
	o.HeavyShare = defaults.Share(o.HeavyShare, DefaultHeavyShare)
	o.MaxWait = defaults.Positive(o.MaxWait, DefaultMaxWait)
	o.MaxWaiters = defaults.Positive(o.MaxWaiters, DefaultMaxWaiters)
	return o
}

// Store is a limiter.Store that bounds the work in flight in the store it
// wraps. It is safe for concurrent use.
type Store struct {
	next       limiter.Store
	opts       Options
	heavyLimit int64

	mu       sync.Mutex
	inflight int64     // weight of the calls running
	heavy    int64     // weight of the heavy calls running
	waiters  list.List // of *waiter, oldest first
	free     []*waiter // spare waiters
}

// waiter is a light call waiting for room.
type waiter struct {
	w     int64
	ready chan struct{} // receives once room was granted
	timer *time.Timer
	elem  *list.Element
}

var (
	_ limiter.Store  = (*Store)(nil)
	_ limiter.Pinger = (*Store)(nil)
)

// New wraps next.
func New(next limiter.Store, opts Options) *Store {
	opts = opts.withDefaults()
	return &Store{next: next, opts: opts, heavyLimit: max(int64(float64(opts.Capacity)*opts.HeavyShare), 1)}
}

// Weight returns the weight of a call of ops: one per op plus one per
// KiB of keys.
func Weight(ops []limiter.Op) int64 {
	var bytes int
	for i := range ops {
		bytes += len(ops[i].Key)
	}
	return int64(len(ops)) + int64(bytes>>10)
}

// InFlight returns the weight of the calls running now.
func (s *Store) InFlight() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// Apply runs the call in the wrapped store once it has room, or sheds it
// with an error wrapping limiter.ErrOverloaded.
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	w := Weight(ops)
	heavy := w > s.opts.HeavyWeight
	if heavy {
		w = min(w, s.heavyLimit) // a call larger than the heavy share alone still runs when nothing heavy does
	} else {
		w = min(w, s.opts.Capacity)
	}
	if err := s.acquire(ctx, w, heavy); err != nil {
		if s.opts.OnShed != nil {
			s.opts.OnShed(heavy)
		}
		return err
	}
	defer s.release(w, heavy)
	return s.next.Apply(ctx, now, ops, out)
}

// acquire takes room for a call of weight w.
func (s *Store) acquire(ctx context.Context, w int64, heavy bool) error {
	s.mu.Lock()
	fits := s.inflight+w <= s.opts.Capacity
	if heavy {
		// Heavy calls never jump ahead of waiting light ones.
		if fits && s.heavy+w <= s.heavyLimit && s.waiters.Len() == 0 {
			s.inflight += w
			s.heavy += w
			s.mu.Unlock()
			return nil
		}
		inflight, hv := s.inflight, s.heavy
		s.mu.Unlock()
		return fmt.Errorf("admission: %w: heavy request of weight %d shed (%d of %d in flight, %d of them heavy)",
			limiter.ErrOverloaded, w, inflight, s.opts.Capacity, hv)
	}
	if fits && s.waiters.Len() == 0 {
		s.inflight += w
		s.mu.Unlock()
		return nil
	}
	if s.waiters.Len() >= s.opts.MaxWaiters {
		n := s.waiters.Len()
		s.mu.Unlock()
		return fmt.Errorf("admission: %w: %d requests already wait for the store", limiter.ErrOverloaded, n)
	}
	wt := s.getWaiter(w)
	wt.elem = s.waiters.PushBack(wt)
	s.mu.Unlock()

	wt.timer.Reset(s.opts.MaxWait)
	var why string
	select {
	case <-wt.ready:
		wt.timer.Stop()
		s.putWaiter(wt)
		return nil
	case <-ctx.Done():
		why = "the deadline passed"
	case <-wt.timer.C:
		why = fmt.Sprintf("no room within %v", s.opts.MaxWait)
	}
	wt.timer.Stop()
	s.mu.Lock()
	if wt.elem == nil { // granted while giving up: hand the room back
		s.mu.Unlock()
		<-wt.ready
		s.release(w, false)
	} else {
		s.waiters.Remove(wt.elem)
		wt.elem = nil
		s.grant() // a smaller waiter behind may fit now
		s.mu.Unlock()
	}
	s.putWaiter(wt)
	err := fmt.Errorf("admission: %w: waited for the store, %s", limiter.ErrOverloaded, why)
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// release returns the room of a call of weight w.
func (s *Store) release(w int64, heavy bool) {
	s.mu.Lock()
	s.inflight -= w
	if heavy {
		s.heavy -= w
	}
	s.grant()
	s.mu.Unlock()
}

// grant hands room to the waiters, oldest first, while they fit; s.mu is
// held.
func (s *Store) grant() {
	for e := s.waiters.Front(); e != nil; e = s.waiters.Front() {
		wt := e.Value.(*waiter)
		if s.inflight+wt.w > s.opts.Capacity {
			return
		}
		s.inflight += wt.w
		s.waiters.Remove(e)
		wt.elem = nil
		wt.ready <- struct{}{} // buffered
	}
}

// getWaiter returns a waiter for weight w; s.mu is held.
func (s *Store) getWaiter(w int64) *waiter {
	if n := len(s.free); n > 0 {
		wt := s.free[n-1]
		s.free = s.free[:n-1]
		wt.w = w
		return wt
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{w: w, ready: make(chan struct{}, 1), timer: t}
}

// putWaiter keeps wt, no longer in the list and with nothing in ready,
// for reuse (up to MaxWaiters of them).
func (s *Store) putWaiter(wt *waiter) {
	s.mu.Lock()
	if len(s.free) < s.opts.MaxWaiters {
		s.free = append(s.free, wt)
	}
	s.mu.Unlock()
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.next.Close() }

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() limiter.Store { return s.next }

// Ping forwards to the wrapped store when it can be pinged; a store that
// cannot tell is taken to answer.
func (s *Store) Ping(ctx context.Context) error {
	if p, ok := s.next.(limiter.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
