// Package overlimit is the local over-limit cache: a limiter.Store
// decorator that remembers keys the store has just declared over their
// limit, and answers later requests for them locally until the time the
// store said a request could pass again, saving the round trip.
//
// It only ever denies, so it never admits a request the store would deny.
// It remembers a key only after a one-hit request was denied with nothing
// remaining, until that request's retry-after: no request with hits ≥ 1
// can pass before then, unless a refund (is_negative_hits) from another
// replica frees quota in the meantime, which the cache cannot see (the
// reference service's local cache has the same limit).
package overlimit

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

const shards = 16

// Store wraps a limiter.Store with the cache. It is safe for concurrent
// use.
type Store struct {
	next    limiter.Store
	perShrd int
	seed    maphash.Seed
	shards  [shards]shard
	onHit   func()
	pool    sync.Pool // *buffers
}

type shard struct {
	mu sync.Mutex
	m  map[string]entry
}

// entry is a key known to be over its limit until until, whose state is
// fresh again at reset (both in µs since the epoch).
type entry struct{ until, reset int64 }

type buffers struct {
	ops    []limiter.Op
	idx    []int
	dec    []strategies.Decision
	cached []bool
}

var _ limiter.Store = (*Store)(nil)

// New wraps next with a cache of at most size keys (size > 0). onHit, when
// not nil, is called for each op answered from the cache.
func New(next limiter.Store, size int, onHit func()) *Store {
	s := &Store{next: next, perShrd: max(1, size/shards), seed: maphash.MakeSeed(), onHit: onHit}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	s.pool.New = func() any { return new(buffers) }
	return s
}

// Reset forgets every key (for instance when the rules change).
func (s *Store) Reset() {
	for i := range s.shards {
		s.shards[i].mu.Lock()
		clear(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%shards]
}

// lookup reports whether key is known over its limit at now.
func (s *Store) lookup(key string, now int64) (entry, bool) {
	sh := s.shard(key)
	sh.mu.Lock()
	e, ok := sh.m[key]
	if ok && now >= e.until {
		delete(sh.m, key)
		ok = false
	}
	sh.mu.Unlock()
	return e, ok
}

// remember caches key when d says nothing can pass before its retry-after.
func (s *Store) remember(op *limiter.Op, d *strategies.Decision, now int64) {
	if d.Allowed || d.Exceeds || op.Hits != 1 || d.Remaining != 0 || d.RetryAfter <= 0 {
		return
	}
	sh := s.shard(op.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= s.perShrd {
		for k, e := range sh.m {
			if now >= e.until {
				delete(sh.m, k)
			}
		}
		if len(sh.m) >= s.perShrd {
			return // full of live keys: the store keeps answering
		}
	}
	sh.m[op.Key] = entry{until: now + d.RetryAfter, reset: now + d.Reset}
}

// Apply answers the ops on cached keys locally and sends the others to
// the store. When a cached denial vetoes the request (limiter.Vetoes),
// the other ops go to the store as checks, since under the all-or-nothing
// rule of limiter.Store the request consumes nothing; refunds still go as
// they are. The store then decides the rest of the call with the same
// rule (limiter.Stage in the Go stores).
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	b := s.pool.Get().(*buffers)
	defer s.release(b)
	if cap(b.cached) < len(ops) {
		b.cached = make([]bool, len(ops))
	}
	b.cached = b.cached[:len(ops)]
	clear(b.cached)
	veto, hit := false, false
	for i := range ops {
		if ops[i].Hits <= 0 {
			continue
		}
		e, ok := s.lookup(ops[i].Key, now)
		if !ok {
			continue
		}
		b.cached[i], hit = true, true
		out[i] = strategies.Decision{RetryAfter: e.until - now, Reset: max(0, e.reset-now)}
		if limiter.Vetoes(&ops[i], &out[i]) {
			veto = true
		}
		if s.onHit != nil {
			s.onHit()
		}
	}
	if !hit {
		if err := s.next.Apply(ctx, now, ops, out); err != nil {
			return err
		}
		for i := range ops {
			s.remember(&ops[i], &out[i], now)
		}
		return nil
	}
	for i := range ops {
		if b.cached[i] {
			continue
		}
		op := ops[i]
		if veto && op.Hits > 0 {
			op.Hits = 0
		}
		b.ops = append(b.ops, op)
		b.idx = append(b.idx, i)
	}
	if len(b.ops) == 0 {
		return nil
	}
	if cap(b.dec) < len(b.ops) {
		b.dec = make([]strategies.Decision, len(b.ops))
	}
	b.dec = b.dec[:len(b.ops)]
	if err := s.next.Apply(ctx, now, b.ops, b.dec); err != nil {
		return err
	}
	for j, i := range b.idx {
		out[i] = b.dec[j]
		s.remember(&b.ops[j], &b.dec[j], now)
	}
	return nil
}

func (s *Store) release(b *buffers) {
	clear(b.ops)
	b.ops, b.idx, b.cached = b.ops[:0], b.idx[:0], b.cached[:0]
	s.pool.Put(b)
}

// Ping forwards to the wrapped store when it can be pinged.
func (s *Store) Ping(ctx context.Context) error {
	if p, ok := s.next.(limiter.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.next.Close() }
