package memcachestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// keyState is one distinct key of an Apply call.
type keyState struct {
	key    string           // the store key, as the ops carry it
	mkey   string           // the memcached key (see memcacheKey)
	item   *memcache.Item   // as last read; nil when missing
	orig   strategies.State // decoded from item
	staged strategies.State // after stepping this call's ops
	ttl    int64            // TTL of staged, from the last step
	ops    []int            // indices of the ops on this key, in order
	// dirty reports that staged must be written: an op consumed or
	// refunded on it.
	dirty bool
	// written reports that staged has been stored.
	written bool
	// done reports that nothing remains to do on the key: it was written,
	// or written and then refunded under a veto.
	done bool
}

// applier runs one Apply call. It is reused through Store.pool.
type applier struct {
	s    *Store
	ctx  context.Context
	now  int64
	ops  []limiter.Op
	out  []strategies.Decision
	keys []keyState
	// opKey maps an op to its index in keys.
	opKey []int
	// denied marks the ops with Hits > 0 that the first pass denied.
	denied []bool
	// veto reports that a non-Independent op with Hits > 0 was denied, so
	// that no op with Hits > 0 consumes.
	veto bool
	buf  []byte
	// stripes are the local locks held for the keys.
	stripes []uint32
}

func (a *applier) reset(s *Store, ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) {
	a.s, a.ctx, a.now, a.ops, a.out, a.veto = s, ctx, now, ops, out, false
	a.opKey = resize(a.opKey, len(ops))
	a.denied = resize(a.denied, len(ops))
	clear(a.denied)
	a.keys = a.keys[:0]
	for i, op := range ops {
		ki := -1
		for j := range a.keys {
			if a.keys[j].key == op.Key {
				ki = j
				break
			}
		}
		if ki < 0 {
			ki = len(a.keys)
			a.keys = append(a.keys, keyState{})
			k := &a.keys[ki]
			ops := k.ops[:0] // keep the backing array of a previous call
			*k = keyState{key: op.Key, mkey: memcacheKey(op.Key), ops: ops}
		}
		a.keys[ki].ops = append(a.keys[ki].ops, i)
		a.opKey[i] = ki
	}
}

// release drops the references of the finished call, so that the pool
// keeps no states, items or contexts alive.
func (a *applier) release() {
	for i := range a.keys {
		ops := a.keys[i].ops[:0]
		a.keys[i] = keyState{ops: ops}
	}
	a.keys = a.keys[:0]
	a.s, a.ctx, a.ops, a.out = nil, nil, nil, nil
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// run reads, steps and writes all keys.
func (a *applier) run() error {
	if err := a.readAll(); err != nil {
		return err
	}
	for ki := range a.keys {
		if a.stepKey(ki) {
			a.veto = true
		}
	}
	if a.veto {
		for ki := range a.keys {
			a.stepKey(ki)
		}
	}
	for ki := range a.keys {
		if !a.keys[ki].dirty {
			continue
		}
		if err := a.commit(ki); err != nil {
			if rerr := a.refundWritten(); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
	}
	return nil
}

// stepKey steps the ops on keys[ki] in order from its state as read,
// writing their decisions to out and setting staged, ttl and dirty. It
// reports whether a non-Independent op with Hits > 0 was denied.
//
// Without a veto every op steps with its hits. Under a veto, ops with
// Hits > 0 that the first pass denied keep their denial, the others step
// as checks (Hits 0), and refunds step as they are.
func (a *applier) stepKey(ki int) (vetoes bool) {
	k := &a.keys[ki]
	st := k.orig
	k.dirty = false
	for _, oi := range k.ops {
		op := &a.ops[oi]
		hits := op.Hits
		if a.veto && hits > 0 {
			if a.denied[oi] {
				continue // a denied op leaves the state as it was
			}
			hits = 0
		}
		next, d := op.Strategy.Step(st, a.now, op.Limit, hits)
		a.out[oi] = d
		if !a.veto {
			a.denied[oi] = hits > 0 && !d.Allowed
		}
		switch {
		case hits > 0 && !d.Allowed:
			if !op.Independent {
				vetoes = true
			}
		case hits != 0:
			k.dirty = true
		}
		st, k.ttl = next, d.TTL
	}
	k.staged = st
	return vetoes
}

// commit writes keys[ki], re-reading and re-stepping it after every lost
// race. When the re-stepped key vetoes the request, it refunds the keys
// already written and re-steps the others under the veto.
func (a *applier) commit(ki int) error {
	k := &a.keys[ki]
	for attempt := 0; ; attempt++ {
		err := a.write(k)
		if err == nil {
			k.written, k.done = true, true
			return nil
		}
		if !isConflict(err) {
			return err
		}
		if attempt >= a.s.maxRetries {
			return fmt.Errorf("%w: key %q, %d retries: %w", ErrContention, k.key, attempt, limiter.ErrUnavailable)
		}
		if err := a.read(k); err != nil {
			return err
		}
		if a.stepKey(ki) && !a.veto {
			a.veto = true
			if err := a.refundWritten(); err != nil {
				return err
			}
			for kj := range a.keys {
				if !a.keys[kj].done {
					a.stepKey(kj)
				}
			}
		}
		if !k.dirty {
			return nil
		}
	}
}

// refundWritten takes back the hits that the ops with Hits > 0 consumed
// on the keys already written, and reports those ops as checks on the
// refunded state. Refunds (Hits < 0) of this call stay applied.
func (a *applier) refundWritten() error {
	var errs []error
	for ki := range a.keys {
		k := &a.keys[ki]
		if !k.written || !a.consumed(k) {
			continue
		}
		if err := a.refund(k); err != nil {
			errs = append(errs, err)
		}
		k.written, k.dirty = false, false
	}
	return errors.Join(errs...)
}

// consumed reports whether an op with Hits > 0 was admitted on k.
func (a *applier) consumed(k *keyState) bool {
	for _, oi := range k.ops {
		if a.ops[oi].Hits > 0 && a.out[oi].Allowed && !a.denied[oi] {
			return true
		}
	}
	return false
}

// refund steps the admitted ops with Hits > 0 on k backwards (Hits < 0)
// on the state now stored, in a compare-and-swap loop.
func (a *applier) refund(k *keyState) error {
	for attempt := 0; ; attempt++ {
		if err := a.read(k); err != nil {
			return err
		}
		st := k.orig
		for i := len(k.ops) - 1; i >= 0; i-- {
			oi := k.ops[i]
			op := &a.ops[oi]
			if op.Hits > 0 && a.out[oi].Allowed && !a.denied[oi] {
				var d strategies.Decision
				st, d = op.Strategy.Step(st, a.now, op.Limit, -op.Hits)
				k.ttl = d.TTL
			}
		}
		k.staged = st
		err := a.write(k)
		if err == nil {
			// Report the refunded ops as checks of the restored state.
			for _, oi := range k.ops {
				op := &a.ops[oi]
				if op.Hits > 0 && !a.denied[oi] {
					_, a.out[oi] = op.Strategy.Step(st, a.now, op.Limit, 0)
				}
			}
			return nil
		}
		if !isConflict(err) {
			return err
		}
		if attempt >= a.s.maxRetries {
			return fmt.Errorf("%w: refund of key %q, %d retries: %w", ErrContention, k.key, attempt, limiter.ErrUnavailable)
		}
	}
}

// readAll reads every key of the call: one get for one key, else one
// multi-get (one round trip per server, in parallel).
func (a *applier) readAll() error {
	if err := a.check("get", a.keys[0].key); err != nil {
		return err
	}
	if len(a.keys) == 1 {
		return a.read(&a.keys[0])
	}
	mkeys := make([]string, len(a.keys))
	for i := range a.keys {
		mkeys[i] = a.keys[i].mkey
	}
	items, err := a.s.mc.GetMulti(mkeys)
	if err != nil {
		return unavailable("get", a.keys[0].key, err)
	}
	for i := range a.keys {
		k := &a.keys[i]
		if err := a.setItem(k, items[k.mkey]); err != nil {
			return err
		}
	}
	return nil
}

// read reads one key again.
func (a *applier) read(k *keyState) error {
	if err := a.check("get", k.key); err != nil {
		return err
	}
	it, err := a.s.mc.Get(k.mkey)
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		it = nil
	case err != nil:
		return unavailable("get", k.key, err)
	}
	return a.setItem(k, it)
}

// setItem records a read item (nil when missing) and decodes its state.
func (a *applier) setItem(k *keyState, it *memcache.Item) error {
	k.item = it
	if it == nil {
		k.orig = strategies.State{}
		return nil
	}
	st, err := decodeState(it.Value)
	if err != nil {
		return fmt.Errorf("memcachestore: key %q (memcached key %q): %w", k.key, k.mkey, err)
	}
	k.orig = st
	return nil
}

// write stores k.staged: compare-and-swap when the key was read, add when
// it was missing. A state that need not be kept (TTL 0) is deleted by a
// compare-and-swap with an expiration in the past, or not written when
// the key was missing. A lost race returns an error for which isConflict
// holds.
func (a *applier) write(k *keyState) error {
	exp, del := expiration(a.now, k.ttl)
	if del {
		if k.item == nil {
			return nil
		}
		exp = -1 // memcached stores the item already expired: a conditional delete
	}
	if err := a.check("set", k.key); err != nil {
		return err
	}
	a.buf = appendState(a.buf[:0], k.staged)
	// gomemcache writes the value before returning, so the buffer may be
	// reused by the next write.
	it := memcache.Item{Key: k.mkey, Value: a.buf, Expiration: exp}
	var err error
	if k.item == nil {
		err = a.s.mc.Add(&it)
	} else {
		it.CasID = k.item.CasID
		err = a.s.mc.CompareAndSwap(&it)
	}
	if err != nil && !isConflict(err) {
		return unavailable("set", k.key, err)
	}
	return err
}

// isConflict reports whether err is a lost race: the key was changed
// (CAS conflict), added (not stored) or removed (cache miss) since it was
// read.
func isConflict(err error) bool {
	return errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss)
}

// check returns an error when the call's context is done: no round trip
// starts after Timeout or after ctx ends.
func (a *applier) check(what, key string) error {
	if err := a.ctx.Err(); err != nil {
		return fmt.Errorf("memcachestore: %s %q: %w: %w", what, key, limiter.ErrUnavailable, err)
	}
	return nil
}

// unavailable wraps a client error (network, timeout, server error) in
// limiter.ErrUnavailable.
func unavailable(what, key string, err error) error {
	return fmt.Errorf("memcachestore: %s %q: %w: %w", what, key, limiter.ErrUnavailable, err)
}
