package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// keyState is one distinct key of an Apply call on the compare-and-swap
// path (every strategy but fixed_window).
type keyState struct {
	key    string           // the store key, as the ops carry it
	mkey   string           // the memcached key (see memcacheKey)
	item   *memcache.Item   // as last read; nil when missing
	orig   strategies.State // decoded from item
	staged strategies.State // after stepping this call's ops
	ttl    int64            // TTL of staged, from the last step
	ops    []int            // indices of the ops on this key, in order
	buf    []byte           // encoding buffer of write
	// dirty reports that staged must be written: an op consumed or
	// refunded on it.
	dirty bool
	// written reports that staged has been stored.
	written bool
	// done reports that nothing remains to do on the key: it was written,
	// or written and then refunded under a veto.
	done bool
	// conflict reports that the last write lost a race.
	conflict bool
}

// applier runs one Apply call. It is reused through Store.pool.
//
// The round trips of one call run in parallel where they do not depend on
// each other (see parallel): the fixed_window counters and the multi-get
// of the other keys first, then the give-backs of refused counter hits
// and the compare-and-swaps of all written keys. Each concurrent task
// touches only its own keyState or fastGroup and the entries of out,
// denied and fprev of that key's ops.
type applier struct {
	s    *Store
	ctx  context.Context
	now  int64
	ops  []limiter.Op
	out  []strategies.Decision
	keys []keyState
	fast []fastGroup
	// opKey maps an op to its index in keys, or in fast when opFast.
	opKey  []int
	opFast []bool
	// denied marks the ops with Hits > 0 that the first pass denied.
	denied []bool
	// fprev is, for each fixed_window op, the count its key had before
	// it, less the hits admitted by earlier ops of the call on the key:
	// what a check reports under a veto.
	fprev []int64
	// veto reports that a non-Independent op with Hits > 0 was denied, so
	// that no op with Hits > 0 consumes.
	veto bool
	// stripes are the local locks held for the keys.
	stripes []uint32
	// pending and tasks are scratch lists of key and group indices.
	pending, tasks []int
}

func (a *applier) reset(s *Store, ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) {
	a.s, a.ctx, a.now, a.ops, a.out, a.veto = s, ctx, now, ops, out, false
	a.opKey = resize(a.opKey, len(ops))
	a.opFast = resize(a.opFast, len(ops))
	a.denied = resize(a.denied, len(ops))
	a.fprev = resize(a.fprev, len(ops))
	clear(a.denied)
	a.keys = a.keys[:0]
	a.fast = a.fast[:0]
	for i := range ops {
		op := &ops[i]
		if isFixedWindow(op.Strategy) {
			a.opFast[i] = true
			a.opKey[i] = a.addFast(i)
			continue
		}
		a.opFast[i] = false
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
			ops, buf := k.ops[:0], k.buf[:0] // keep the backing arrays of a previous call
			*k = keyState{key: op.Key, mkey: memcacheKey(op.Key), ops: ops, buf: buf}
		}
		a.keys[ki].ops = append(a.keys[ki].ops, i)
		a.opKey[i] = ki
	}
}

// addFast adds fixed_window op i to the group of its key and period and
// returns the group's index.
func (a *applier) addFast(i int) int {
	op := &a.ops[i]
	for j := range a.fast {
		g := &a.fast[j]
		if g.key == op.Key && g.lim.Period == op.Limit.Period {
			g.ops = append(g.ops, i)
			g.batch = g.batch && op.Hits >= 0
			return j
		}
	}
	j := len(a.fast)
	a.fast = append(a.fast, fastGroup{})
	g := &a.fast[j]
	ops := g.ops[:0]
	*g = fastGroup{key: op.Key, lim: op.Limit, ops: append(ops, i), batch: op.Hits >= 0}
	if op.Limit.Period <= 0 {
		g.local = true
	} else {
		g.start = windowStart(a.now, op.Limit.Period)
		g.mkey = windowKey(op.Key, g.start)
	}
	return j
}

// release drops the references of the finished call, so that the pool
// keeps no states, items or contexts alive.
func (a *applier) release() {
	for i := range a.keys {
		ops, buf := a.keys[i].ops[:0], a.keys[i].buf[:0]
		a.keys[i] = keyState{ops: ops, buf: buf}
	}
	a.keys = a.keys[:0]
	for i := range a.fast {
		ops := a.fast[i].ops[:0]
		a.fast[i] = fastGroup{ops: ops}
	}
	a.fast = a.fast[:0]
	a.s, a.ctx, a.ops, a.out = nil, nil, nil, nil
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// maxParallel bounds the goroutines of one call's parallel round trips.
const maxParallel = 8

// parallel runs f(0) … f(n−1) on up to maxParallel goroutines (the
// calling one included) and returns their errors joined. It returns
// after every f has returned, so no goroutine outlives the call.
func parallel(n int, f func(i int) error) error {
	switch n {
	case 0:
		return nil
	case 1:
		return f(0)
	}
	errs := make([]error, n)
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			errs[i] = f(i)
		}
	}
	var wg sync.WaitGroup
	for range min(n, maxParallel) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return errors.Join(errs...)
}

// run applies the call: the fixed_window counters and the read of the
// other keys in parallel, then the steps of the other keys and the
// all-or-nothing rule, then the give-backs and writes.
func (a *applier) run() error {
	nf := len(a.fast)
	n := nf
	if len(a.keys) > 0 {
		n++
	}
	err := parallel(n, func(i int) error {
		if i < nf {
			return a.fastRun(&a.fast[i])
		}
		return a.readAll()
	})
	if err != nil {
		return a.fail(err)
	}
	veto := false
	for gi := range a.fast {
		if a.fastVetoes(&a.fast[gi]) {
			veto = true
		}
	}
	for ki := range a.keys {
		if a.stepKey(ki) {
			veto = true
		}
	}
	if veto {
		a.applyVeto()
	}
	return a.commitAll()
}

// applyVeto sets the veto and re-steps every key not yet done under it.
func (a *applier) applyVeto() {
	a.veto = true
	for ki := range a.keys {
		if !a.keys[ki].done {
			a.stepKey(ki)
		}
	}
	for gi := range a.fast {
		a.fastVeto(&a.fast[gi])
	}
}

// commitAll gives back the counter hits the call does not keep and writes
// the dirty keys, in rounds of parallel round trips: after a round, the
// keys that lost a race are read again (in one multi-get) and re-stepped;
// when a re-stepped key now vetoes the request, what the call already
// consumed is taken back first.
func (a *applier) commitAll() error {
	for round := 0; ; round++ {
		a.tasks = a.tasks[:0]
		for gi := range a.fast {
			if a.fast[gi].consumed > a.keep(&a.fast[gi]) {
				a.tasks = append(a.tasks, gi)
			}
		}
		a.pending = a.pending[:0]
		for ki := range a.keys {
			if k := &a.keys[ki]; k.dirty && !k.done {
				a.pending = append(a.pending, ki)
			}
		}
		nt := len(a.tasks)
		err := parallel(nt+len(a.pending), func(i int) error {
			if i < nt {
				g := &a.fast[a.tasks[i]]
				return a.giveBack(g, a.keep(g))
			}
			k := &a.keys[a.pending[i-nt]]
			err := a.write(k)
			switch {
			case err == nil:
				k.written, k.done = true, true
			case isConflict(err):
				k.conflict = true
				err = nil
			}
			return err
		})
		if err != nil {
			return a.fail(err)
		}
		conflicts := a.pending[:0]
		for _, ki := range a.pending {
			if a.keys[ki].conflict {
				a.keys[ki].conflict = false
				conflicts = append(conflicts, ki)
			}
		}
		if len(conflicts) == 0 {
			return nil
		}
		if round >= a.s.maxRetries {
			return a.fail(contention("set", a.keys[conflicts[0]].key, round))
		}
		if err := a.readKeys(conflicts); err != nil {
			return a.fail(err)
		}
		veto := false
		for _, ki := range conflicts {
			if a.stepKey(ki) && !a.veto {
				veto = true
			}
		}
		if veto {
			if err := a.undo(); err != nil {
				return err
			}
			a.applyVeto()
		}
	}
}

// keep is how many hits the call keeps on g's counter.
func (a *applier) keep(g *fastGroup) int64 {
	if a.veto {
		return 0
	}
	return g.admitted
}

// fail takes back what the call consumed, as far as the servers can still
// be reached, and returns err (joined with the errors of taking back).
func (a *applier) fail(err error) error {
	a.veto = true
	if uerr := a.undo(); uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

// undo takes back, in parallel, the hits that the ops with Hits > 0
// consumed on the keys already written and on the counters, and reports
// those ops as checks. Refunds (Hits < 0) of this call stay applied.
func (a *applier) undo() error {
	a.tasks = a.tasks[:0]
	for gi := range a.fast {
		if a.fast[gi].consumed > 0 {
			a.tasks = append(a.tasks, -1-gi)
		}
	}
	for ki := range a.keys {
		if k := &a.keys[ki]; k.written && a.consumed(k) {
			a.tasks = append(a.tasks, ki)
		}
	}
	err := parallel(len(a.tasks), func(i int) error {
		t := a.tasks[i]
		if t < 0 {
			return a.giveBack(&a.fast[-1-t], 0)
		}
		k := &a.keys[t]
		err := a.refund(k)
		k.written, k.dirty = false, false
		return err
	})
	for gi := range a.fast {
		a.fastVeto(&a.fast[gi])
	}
	return err
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
			return contention("refund of", k.key, attempt)
		}
	}
}

// readAll reads every key of the call.
func (a *applier) readAll() error {
	a.pending = a.pending[:0]
	for ki := range a.keys {
		a.pending = append(a.pending, ki)
	}
	return a.readKeys(a.pending)
}

// readKeys reads the keys of the given indices: one get for one key, else
// one multi-get (one round trip per server, in parallel).
func (a *applier) readKeys(kis []int) error {
	first := &a.keys[kis[0]]
	if len(kis) == 1 {
		return a.read(first)
	}
	if err := a.check("get", first.key); err != nil {
		return err
	}
	mkeys := make([]string, len(kis))
	for i, ki := range kis {
		mkeys[i] = a.keys[ki].mkey
	}
	items, err := a.s.mc.GetMulti(mkeys)
	if err != nil {
		return unavailable("get", first.key, err)
	}
	for _, ki := range kis {
		k := &a.keys[ki]
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
	k.buf = appendState(k.buf[:0], k.staged)
	// gomemcache writes the value before returning, so the buffer may be
	// reused by the next write.
	it := memcache.Item{Key: k.mkey, Value: k.buf, Expiration: exp}
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
// starts after Timeout or after ctx ends (see ctxError).
func (a *applier) check(what, key string) error {
	if a.ctx.Err() != nil {
		return ctxError(a.ctx, fmt.Sprintf("%s %q", what, key))
	}
	return nil
}

// contention is the error of a key that lost more compare-and-swap (or
// add) races than Options.MaxRetries allows: load on one key, not an
// outage, so it wraps limiter.ErrOverloaded.
func contention(what, key string, attempts int) error {
	return fmt.Errorf("%w: %s key %q, %d retries: %w", ErrContention, what, key, attempts, limiter.ErrOverloaded)
}

// unavailable classifies a client error of a call on key (see
// classifyClientError).
func unavailable(what, key string, err error) error {
	if kind := classifyClientError(err); kind != nil {
		return fmt.Errorf("memcachestore: %s %q: %w: %w", what, key, kind, err)
	}
	return fmt.Errorf("memcachestore: %s %q: %w", what, key, err)
}
