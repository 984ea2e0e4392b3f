package limiter_test

import (
	"errors"
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// versioned is a toy backend with compare-and-swap, like memcached's gets
// and cas: every write bumps the version of its key.
type versioned struct {
	states   map[string]strategies.State
	versions map[string]uint64
	// race, when set, is run once before the next write, as another
	// client writing between our read and our write.
	race func()
}

var errConflict = errors.New("cas conflict")

func (v *versioned) get(key string) (strategies.State, uint64) {
	return v.states[key], v.versions[key]
}

func (v *versioned) cas(key string, st strategies.State, ttl int64, version uint64) error {
	if r := v.race; r != nil {
		v.race = nil
		r()
	}
	if v.versions[key] != version {
		return errConflict
	}
	if ttl == 0 {
		delete(v.states, key) // fresh again: nothing to keep
	} else {
		v.states[key] = st
	}
	v.versions[key]++
	return nil
}

// apply is the Apply of a store that reads states, decides, then writes
// each changed key by compare-and-swap. When a write loses a race it
// gives back what the call already wrote (Unstage), reads every key again
// and decides the call anew (Stage), at most three times.
func (v *versioned) apply(now int64, ops []limiter.Op, out []strategies.Decision) error {
	// Group the ops by key: keyOf[i] is the index in keys of op i's key.
	var names []string
	keyOf := make([]int, len(ops))
	for i, op := range ops {
		keyOf[i] = len(names)
		for k, n := range names {
			if n == op.Key {
				keyOf[i] = k
			}
		}
		if keyOf[i] == len(names) {
			names = append(names, op.Key)
		}
	}
	keys := make([]limiter.Staged, len(names))
	versions := make([]uint64, len(names))
	written := make([]bool, len(names))
	consumed := make([]bool, len(ops))
	for attempt := 0; attempt < 3; attempt++ {
		for k, n := range names {
			keys[k].Orig, versions[k] = v.get(n)
		}
		veto := limiter.Stage(now, ops, keyOf, keys, out)
		for i := range ops {
			consumed[i] = limiter.Consumed(&ops[i], &out[i], veto)
		}
		conflict := false
		for k, n := range names {
			if !keys[k].Dirty {
				continue
			}
			if err := v.cas(n, keys[k].State, keys[k].TTL, versions[k]); err != nil {
				conflict = true
				break
			}
			written[k] = true
		}
		if !conflict {
			return nil
		}
		// Give back what this attempt consumed on the keys it wrote.
		for k, n := range names {
			if !written[k] {
				continue
			}
			written[k] = false
			cur, version := v.get(n)
			if st, ttl, changed := limiter.Unstage(now, ops, keyOf, k, cur, consumed); changed {
				if err := v.cas(n, st, ttl, version); err != nil {
					return fmt.Errorf("give back %s: %w", n, err)
				}
			}
		}
	}
	return errors.New("too much contention")
}

// Example_compareAndSwap shows Stage and Unstage in a store that writes by
// compare-and-swap. The second call asks for a hit on "a" and on "b",
// whose window is full: "b" vetoes the call, so "a" reports a check and
// nothing is written. The third call loses a race on its second key, so
// it gives back its hit on "a" and decides again.
func Example_compareAndSwap() {
	fw, _ := strategies.Lookup("fixed_window")
	lim, _ := fw.Prepare(strategies.Limit{Requests: 2, Period: strategies.Minute})
	op := func(key string, hits int64) limiter.Op {
		return limiter.Op{Key: key, Strategy: fw, Limit: lim, Hits: hits}
	}
	v := &versioned{states: map[string]strategies.State{}, versions: map[string]uint64{}}
	now := int64(0)
	out := make([]strategies.Decision, 2)

	_ = v.apply(now, []limiter.Op{op("b", 2)}, out[:1])
	fmt.Println("fill b:", out[0].Allowed, out[0].Remaining)

	_ = v.apply(now, []limiter.Op{op("a", 1), op("b", 1)}, out)
	fmt.Println("a+b:", out[0].Allowed, out[0].Remaining, "|", out[1].Allowed, out[1].Remaining)

	v.race = func() { // another client writes "c" between our read and write
		c, _ := v.get("c")
		_ = v.cas("c", c, 0, v.versions["c"])
	}
	_ = v.apply(now, []limiter.Op{op("a", 1), op("c", 1)}, out)
	fmt.Println("a+c:", out[0].Allowed, out[0].Remaining, "|", out[1].Allowed, out[1].Remaining)
	// Output:
	// fill b: true 0
	// a+b: true 2 | false 0
	// a+c: true 1 | true 1
}
