package memcachestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// keyState is one distinct key of an Apply call: a fixed_window counter
// (the ops of one store key and period, see fastpath.go) or a state
// written by compare-and-swap (the ops of one store key, every other
// strategy). Its limiter.Staged is the entry of the same index in
// applier.staged.
type keyState struct {
	key  string // the store key, as the ops carry it
	mkey string // the memcached key: windowKey for a counter, else memcacheKey
	// fast marks a fixed_window counter.
	fast bool
	// local marks a counter whose period Step decides without state: it
	// costs no round trip.
	local  bool
	period int64 // fast: the period of its ops
	start  int64 // fast: the window its ops count in
	// sum is the hits the counter's incr adds (fast): those of its ops
	// that can fit at all.
	sum int64
	// held reports that the counter was read or incremented (fast), so
	// base and cur are known and cur−base hits may need giving back.
	held bool
	base int64 // fast: the count before this call's incr
	cur  int64 // fast: the count as this call left it (others' changes aside)
	// found reports that the state existed when last read, with CAS id cas.
	found bool
	cas   uint64
	// written reports that a state of this call is stored (compare-and-
	// swap keys); such a key is never written again by the call, only
	// given back (limiter.Unstage) under a veto or an error.
	written bool
	buf     []byte // encoding buffer of its writes
}

// applier runs one Apply call. It is reused through Store.pool.
//
// A call is at most a few phases of round trips, each phase one exec of
// all its commands: (rarely) a search for a later window of a counter,
// then the incr of every counter and the read of every other key, then
// the give-backs of counter hits and the writes of the changed states;
// keys that lost a compare-and-swap race are read again and the call
// decided again (limiter.Stage) until every write succeeds.
type applier struct {
	s   *Store
	ctx context.Context
	now int64
	ops []limiter.Op
	out []strategies.Decision

	keys   []keyState
	staged []limiter.Staged // one per key: what limiter.Stage decides on
	keyOf  []int            // op → index in keys
	// consumed is limiter.Consumed of each op for the last Stage.
	consumed []bool
	// veto is what the last Stage returned. Once set it stays set: the
	// counters have given their hits back.
	veto bool
	// stripes are the local locks held for the compare-and-swap keys.
	stripes []uint32
	// cmds and cmdKey are the commands of a phase and their keys; jobs
	// is exec's scratch, one per server.
	cmds   []cmd
	cmdKey []int
	jobs   []job
	// pending, prev, vcmds and vcmdKey are scratch lists.
	pending []int
	prev    []bool
	vcmds   []cmd
	vcmdKey []int
	// vops, vkeyOf and vout hold the call plus vetoOp, to decide it under
	// a veto (see stage).
	vops   []limiter.Op
	vkeyOf []int
	vout   []strategies.Decision
}

// vetoOp returns an op that always vetoes its call (one hit against a
// limit of none): added to a call's ops, it makes limiter.Stage decide the
// others as under a veto.
func vetoOp() limiter.Op {
	return limiter.Op{Strategy: strategies.FixedWindow{}, Limit: strategies.Limit{Requests: 0, Period: 1}, Hits: 1}
}

func (a *applier) reset(s *Store, ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) {
	a.s, a.ctx, a.now, a.ops, a.out, a.veto = s, ctx, now, ops, out, false
	a.keyOf = resize(a.keyOf, len(ops))
	a.consumed = resize(a.consumed, len(ops))
	clear(a.consumed)
	a.keys = a.keys[:0]
	for i := range ops {
		op := &ops[i]
		fast := isFixedWindow(op.Strategy)
		ki := -1
		for j := range a.keys {
			k := &a.keys[j]
			if k.fast == fast && k.key == op.Key && (!fast || k.period == op.Limit.Period) {
				ki = j
				break
			}
		}
		if ki < 0 {
			ki = len(a.keys)
			a.keys = append(a.keys, keyState{})
			k := &a.keys[ki]
			*k = keyState{key: op.Key, fast: fast, buf: k.buf[:0]} // keep the buffer of a previous call
			switch {
			case !fast:
				k.mkey = memcacheKey(op.Key)
			case op.Limit.Period <= 0:
				k.local = true
			default:
				k.period = op.Limit.Period
				k.start = window.Start(now, k.period)
				k.mkey = windowKey(op.Key, k.start)
			}
		}
		a.keyOf[i] = ki
		if k := &a.keys[ki]; fast && op.Hits > 0 && op.Hits <= op.Limit.Requests {
			k.sum += op.Hits
		}
	}
	a.staged = resize(a.staged, len(a.keys))
	clear(a.staged)
}

// release drops the references of the finished call, so that the pool
// keeps no states, keys or contexts alive.
func (a *applier) release() {
	for i := range a.keys {
		a.keys[i] = keyState{buf: a.keys[i].buf[:0]}
	}
	a.keys = a.keys[:0]
	clear(a.staged)
	clear(a.cmds)
	clear(a.vops)
	a.s, a.ctx, a.ops, a.out = nil, nil, nil, nil
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// run applies the call: read (and increment) every key, decide the call
// with limiter.Stage, then commit.
func (a *applier) run() error {
	if err := a.locate(); err != nil {
		return a.fail(err)
	}
	if err := a.readAll(); err != nil {
		return a.fail(err)
	}
	a.stage()
	return a.commit()
}

// stage decides the call from the states in a.staged, under a veto when
// an earlier Stage of the call vetoed it, and updates consumed.
func (a *applier) stage() {
	if !a.veto {
		a.veto = limiter.Stage(a.now, a.ops, a.keyOf, a.staged, a.out)
	} else {
		// The call stays vetoed (its counters have given their hits
		// back): decide it with an op that vetoes it.
		n := len(a.ops)
		a.vops = append(append(a.vops[:0], a.ops...), vetoOp())
		a.vkeyOf = append(append(a.vkeyOf[:0], a.keyOf...), len(a.keys))
		a.vout = resize(a.vout, n+1)
		// The extra key of vetoOp; a.staged keeps the backing array
		// Stage wrote to.
		a.staged = append(a.staged, limiter.Staged{})
		limiter.Stage(a.now, a.vops, a.vkeyOf, a.staged, a.vout)
		a.staged = a.staged[:len(a.keys)]
		copy(a.out, a.vout[:n])
		clear(a.vops)
	}
	for i := range a.ops {
		a.consumed[i] = limiter.Consumed(&a.ops[i], &a.out[i], a.veto)
	}
}

// readAll increments every counter by its sum (reads it when the sum is
// 0) and reads every other key, in one phase, and fills a.staged's Orig.
func (a *applier) readAll() error {
	a.startPhase()
	for ki := range a.keys {
		k := &a.keys[ki]
		switch {
		case k.local:
		case k.fast && k.sum > 0:
			exp, _ := expiration(a.now, k.start+k.period-a.now)
			a.addCmd(ki, cmd{op: cmdIncr, key: k.mkey, delta: uint64(k.sum), exp: exp})
		default:
			a.addCmd(ki, cmd{op: cmdGet, key: k.mkey})
		}
	}
	return a.execReads()
}

// execReads runs the phase's reads (incrs and gets) and records each
// answer with readDone.
func (a *applier) execReads() error {
	a.s.exec(a.ctx, a.cmds, a.jobs)
	var errs []error
	for ci := range a.cmds {
		if err := a.readDone(a.cmdKey[ci], &a.cmds[ci]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readDone records the answer of the incr or get of keys[ki] in
// a.staged[ki].Orig.
func (a *applier) readDone(ki int, c *cmd) error {
	k := &a.keys[ki]
	if c.err != nil {
		return a.cmdError(k, c)
	}
	if !k.fast {
		st, err := a.decode(k, c)
		a.staged[ki].Orig = st
		return err
	}
	var count int64
	switch {
	case c.op == cmdIncr:
		v, err := a.countOf(k, c.num)
		if err != nil {
			return err
		}
		count = v - k.sum
		k.cur = v
	case c.res == resOK:
		v, err := parseCount(c.val)
		if err != nil {
			return fmt.Errorf("memcachestore: key %q (memcached key %q): %w", k.key, k.mkey, err)
		}
		count, k.cur = v, v
	}
	k.held, k.base = true, count
	a.staged[ki].Orig = strategies.State{A: k.start, B: count}
	return nil
}

// decode records the CAS id of a get of k and returns the state it read:
// the zero State for a missing key.
func (a *applier) decode(k *keyState, c *cmd) (strategies.State, error) {
	k.found, k.cas = c.res == resOK, c.casID
	if !k.found {
		return strategies.State{}, nil
	}
	st, err := decodeState(c.val)
	if err != nil {
		return strategies.State{}, fmt.Errorf("memcachestore: key %q (memcached key %q): %w", k.key, k.mkey, err)
	}
	return st, nil
}

// commit gives back the counter hits the call does not keep and writes
// the changed states, in phases: after a phase, the keys that lost a race
// are read again and the call decided again; when it is now vetoed, what
// the call already consumed on the keys it wrote is given back first.
func (a *applier) commit() error {
	for round := 0; ; round++ {
		a.startPhase()
		for ki := range a.keys {
			k := &a.keys[ki]
			if k.fast {
				if n := k.cur - a.counterWant(ki); k.held && n > 0 {
					a.addCmd(ki, cmd{op: cmdDecr, key: k.mkey, delta: uint64(n)})
				}
			} else if a.staged[ki].Dirty && !k.written {
				if c, ok := a.writeCmd(k, a.staged[ki].State, a.staged[ki].TTL); ok {
					a.addCmd(ki, c)
				} else {
					k.written = true // nothing to store
				}
			}
		}
		a.s.exec(a.ctx, a.cmds, a.jobs)
		var errs []error
		a.pending = a.pending[:0]
		for ci := range a.cmds {
			c := &a.cmds[ci]
			ki := a.cmdKey[ci]
			k := &a.keys[ki]
			switch {
			case c.err != nil:
				errs = append(errs, a.cmdError(k, c))
			case k.fast:
				k.cur = a.counterWant(ki)
			case c.res == resConflict:
				a.pending = append(a.pending, ki)
			default:
				k.written = true
			}
		}
		if len(errs) > 0 {
			return a.fail(errors.Join(errs...))
		}
		if len(a.pending) == 0 {
			a.raiseHighWater()
			return nil
		}
		if round >= a.s.maxRetries {
			return a.fail(contention("set", a.keys[a.pending[0]].key, round))
		}
		if err := a.reread(a.pending); err != nil {
			return a.fail(err)
		}
		wasVetoed := a.veto
		a.prev = append(a.prev[:0], a.consumed...)
		a.stage()
		if a.veto && !wasVetoed {
			if err := a.unstage(a.prev); err != nil {
				return a.fail(err)
			}
		}
	}
}

// counterWant is the count that counter keys[ki] must be left at, as far
// as this call is concerned: the state Stage decided when it stays in the
// counter's window, else the count before the call plus the hits of its
// ops that consumed.
func (a *applier) counterWant(ki int) int64 {
	k, st := &a.keys[ki], &a.staged[ki]
	if !st.Dirty {
		return k.base
	}
	if st.State.A == k.start {
		return st.State.B
	}
	want := k.base
	for i := range a.ops {
		if a.keyOf[i] == ki && a.consumed[i] {
			want += a.ops[i].Hits
		}
	}
	return want
}

// writeCmd returns the command that stores st (TTL ttl) on k: cas when
// the key was read, add when it was missing, a conditional delete when st
// need not be kept; ok is false when there is nothing to do (a missing key
// that need not be kept).
func (a *applier) writeCmd(k *keyState, st strategies.State, ttl int64) (c cmd, ok bool) {
	exp, del := expiration(a.now, ttl)
	switch {
	case del && !k.found:
		return cmd{}, false
	case del:
		return cmd{op: cmdDelete, key: k.mkey, cas: k.cas}, true
	}
	k.buf = appendState(k.buf[:0], st)
	if !k.found {
		return cmd{op: cmdAdd, key: k.mkey, value: k.buf, exp: exp}, true
	}
	return cmd{op: cmdCAS, key: k.mkey, value: k.buf, exp: exp, cas: k.cas}, true
}

// reread reads the keys of the given indices again into a.staged.
func (a *applier) reread(kis []int) error {
	a.startPhase()
	for _, ki := range kis {
		a.addCmd(ki, cmd{op: cmdGet, key: a.keys[ki].mkey})
	}
	return a.execReads()
}

// unstage gives back, on every key the call wrote, the hits its ops
// consumed there (consumed as limiter.Consumed held for the Stage that was
// written), each key in a compare-and-swap loop (limiter.Unstage on the
// state as read again). Refunds of the call stay applied.
func (a *applier) unstage(consumed []bool) error {
	a.pending = a.pending[:0]
	for ki := range a.keys {
		if k := &a.keys[ki]; !k.fast && k.written && a.holds(ki, consumed) {
			a.pending = append(a.pending, ki)
		}
	}
	for attempt := 0; len(a.pending) > 0; attempt++ {
		if attempt > a.s.maxRetries {
			return contention("refund of", a.keys[a.pending[0]].key, attempt-1)
		}
		a.startPhase()
		for _, ki := range a.pending {
			a.addCmd(ki, cmd{op: cmdGet, key: a.keys[ki].mkey})
		}
		a.s.exec(a.ctx, a.cmds, a.jobs)
		var errs []error
		a.pending = a.pending[:0]
		a.vcmds = append(a.vcmds[:0], a.cmds...)
		a.vcmdKey = append(a.vcmdKey[:0], a.cmdKey...)
		a.startPhase()
		for ci := range a.vcmds {
			ki, k := a.vcmdKey[ci], &a.keys[a.vcmdKey[ci]]
			if a.vcmds[ci].err != nil {
				errs = append(errs, a.cmdError(k, &a.vcmds[ci]))
				continue
			}
			cur, err := a.decode(k, &a.vcmds[ci])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			st, ttl, changed := limiter.Unstage(a.now, a.ops, a.keyOf, ki, cur, consumed)
			if !changed {
				continue
			}
			if c, ok := a.writeCmd(k, st, ttl); ok {
				a.addCmd(ki, c)
			}
		}
		clear(a.vcmds)
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		a.s.exec(a.ctx, a.cmds, a.jobs)
		for ci := range a.cmds {
			c := &a.cmds[ci]
			switch {
			case c.err != nil:
				errs = append(errs, a.cmdError(&a.keys[a.cmdKey[ci]], c))
			case c.res == resConflict:
				a.pending = append(a.pending, a.cmdKey[ci])
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	return nil
}

// holds reports whether an op on keys[ki] consumed, by consumed.
func (a *applier) holds(ki int, consumed []bool) bool {
	for i := range a.ops {
		if a.keyOf[i] == ki && consumed[i] {
			return true
		}
	}
	return false
}

// fail gives back what the call consumed, as far as the servers can still
// be reached within the call's time, and returns err joined with the
// errors of giving back: the hits added to the counters, and what the ops
// consumed on the keys written. Refunds of the call stay applied.
func (a *applier) fail(err error) error {
	var errs []error
	a.startPhase()
	for ki := range a.keys {
		if k := &a.keys[ki]; k.fast && k.held && k.cur > k.base {
			a.addCmd(ki, cmd{op: cmdDecr, key: k.mkey, delta: uint64(k.cur - k.base)})
		}
	}
	a.s.exec(a.ctx, a.cmds, a.jobs)
	for ci := range a.cmds {
		if c := &a.cmds[ci]; c.err != nil {
			errs = append(errs, a.cmdError(&a.keys[a.cmdKey[ci]], c))
		}
	}
	a.prev = append(a.prev[:0], a.consumed...)
	if uerr := a.unstage(a.prev); uerr != nil {
		errs = append(errs, uerr)
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// startPhase empties the command list.
func (a *applier) startPhase() {
	clear(a.cmds)
	a.cmds, a.cmdKey = a.cmds[:0], a.cmdKey[:0]
}

// addCmd adds a command on keys[ki] to the phase.
func (a *applier) addCmd(ki int, c cmd) {
	a.cmds = append(a.cmds, c)
	a.cmdKey = append(a.cmdKey, ki)
}

// cmdError is the error of a command on k that failed.
func (a *applier) cmdError(k *keyState, c *cmd) error {
	what := [...]string{cmdGet: "get", cmdIncr: "incr", cmdDecr: "decr", cmdAdd: "add", cmdCAS: "cas", cmdDelete: "delete"}[c.op]
	switch {
	case errors.Is(c.err, errNotSent):
		return ctxError(a.ctx, fmt.Sprintf("%s %q", what, k.key))
	case errors.Is(c.err, errClientError) && k.fast:
		// memcached refuses to count a value that is not a decimal
		// counter (written by another program): a malformed state.
		return fmt.Errorf("memcachestore: %s key %q (memcached key %q): %w: %w", what, k.key, k.mkey, ErrMalformedState, c.err)
	}
	return unavailable(what, k.key, c.err)
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
