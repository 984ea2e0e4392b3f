package limiter

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

// The all-or-nothing rule of Store.Apply, written once for every store
// that steps the strategies in Go: it reads the states of a call's keys,
// decides every op on working copies (Stage), then writes the changed
// states back. The memory store does the three under its shard locks; a
// store that writes by compare-and-swap (memcached) retries what lost a
// race, giving back first what it already wrote (Unstage). Redis runs the
// same rule in Lua inside the server.

// Staged is the working copy of one distinct key within one Store.Apply
// call. The store fills Orig; Stage fills the rest. The zero Staged is a
// key read as missing.
type Staged struct {
	// Orig is the state as read from the backend: the zero State for a
	// missing or expired key. Stage never changes it.
	Orig strategies.State
	// State is the state after the call's ops, the one to write when
	// Dirty. It equals Orig when Dirty is false.
	State strategies.State
	// TTL is how long State must be kept (microseconds), from the last
	// decision that changed it; 0 means State may be deleted.
	TTL int64
	// Dirty reports that an op consumed or refunded on the key, so State
	// must be written (or deleted when TTL is 0). Checks and refusals
	// change nothing.
	Dirty bool
}

// Vetoes reports whether op's decision d stops every op of its call from
// consuming: op consumes hits (Hits > 0), was refused, and is not
// Independent.
func Vetoes(op *Op, d *strategies.Decision) bool {
	return op.Hits > 0 && !d.Allowed && !op.Independent
}

// Consumed reports whether op i of a call holds hits on its key after the
// Stage that returned veto: it asked for hits, was admitted and the call
// was not vetoed. These are the hits Unstage gives back.
func Consumed(op *Op, d *strategies.Decision, veto bool) bool {
	return !veto && op.Hits > 0 && d.Allowed
}

// Stage applies the ops of one Store.Apply call at now to staged copies
// of their keys under the all-or-nothing rule of Store, and writes one
// decision per op into out (len(ops)).
//
// keyOf[i] is the index in keys of op i's key (len(ops) entries); keys
// holds one Staged per distinct key with its Orig filled. Ops on one key
// step in order, each from the state the previous one left. When an op
// Vetoes the call, Stage starts again from Orig: ops with Hits > 0 that
// were refused keep their refusal, those that were admitted report a
// check (Hits 0) of their key as the refunds before them left it, and
// checks and refunds (Hits ≤ 0) apply as usual. Stage reports whether
// the call was vetoed.
//
// Stage is a pure function of its arguments: it reads no clock, holds no
// lock and allocates nothing, and calling it again after the store read
// some keys anew (a compare-and-swap that lost a race) decides the call
// from scratch. ops must all have a Strategy.
func Stage(now int64, ops []Op, keyOf []int, keys []Staged, out []strategies.Decision) (veto bool) {
	for k := range keys {
		keys[k].State, keys[k].TTL, keys[k].Dirty = keys[k].Orig, 0, false
	}
	for i := range ops {
		op := &ops[i]
		k := &keys[keyOf[i]]
		next, d := op.Strategy.Step(k.State, now, op.Limit, op.Hits)
		out[i] = d
		if Vetoes(op, &d) {
			veto = true
		}
		if op.Hits != 0 && d.Allowed {
			k.State, k.TTL, k.Dirty = next, d.TTL, true
		}
	}
	if !veto {
		return false
	}
	for k := range keys {
		keys[k].State, keys[k].TTL, keys[k].Dirty = keys[k].Orig, 0, false
	}
	for i := range ops {
		op := &ops[i]
		k := &keys[keyOf[i]]
		switch {
		case op.Hits > 0 && !out[i].Allowed:
			// A refusal stands and changes nothing.
		case op.Hits > 0:
			_, out[i] = op.Strategy.Step(k.State, now, op.Limit, 0)
		default:
			next, d := op.Strategy.Step(k.State, now, op.Limit, op.Hits)
			out[i] = d
			if op.Hits != 0 {
				k.State, k.TTL, k.Dirty = next, d.TTL, true
			}
		}
	}
	return true
}

// Unstage gives back, on cur (the state of key k as read again), the hits
// that a committed Stage consumed on k: consumed[i] reports, for each op,
// Consumed as it held for that Stage. It steps those ops backwards
// (Hits < 0) in reverse order and returns the state to write and its TTL;
// changed is false (and cur returned as it is) when no op consumed on k,
// so nothing needs writing.
// A compare-and-swap store calls it for the keys it already wrote when a
// later key of the same call lost a race and the call must be decided
// again, or when the call fails part way; other requests may have stepped
// cur in between, which Unstage leaves as it finds it.
func Unstage(now int64, ops []Op, keyOf []int, k int, cur strategies.State, consumed []bool) (st strategies.State, ttl int64, changed bool) {
	for i := len(ops) - 1; i >= 0; i-- {
		if keyOf[i] != k || !consumed[i] {
			continue
		}
		op := &ops[i]
		var d strategies.Decision
		cur, d = op.Strategy.Step(cur, now, op.Limit, -op.Hits)
		ttl, changed = d.TTL, true
	}
	return cur, ttl, changed
}
