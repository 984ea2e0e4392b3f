package memcachestore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// The fixed_window counter path.
//
// A fixed_window key is not stored as an encoded state under its own
// memcached key, but as one decimal counter per window under
// windowKey(key, window start), which expires with the window. A call
// then costs one incr per counter (creating it when missing) of the hits
// of its ops that can fit at all: the count before the incr is the state
// the strategy's Step sees, so limiter.Stage decides the ops from it as
// from any other state, and the call gives back with a decr what Stage
// did not keep (refused hits, the hits of a vetoed call) and what its
// refunds take (memcached's decr stops at 0, as Step's refund does).
// Checks and refunds alone read the counter with a get.
//
// Between an incr and the decr that gives hits back, other requests on
// the key may see a count above the limit and be refused too (never
// admitted beyond the limit).

// isFixedWindow reports whether s is the fixed_window strategy, whose ops
// take the counter path.
func isFixedWindow(s strategies.Strategy) bool {
	switch s.(type) {
	case strategies.FixedWindow, *strategies.FixedWindow:
		return true
	}
	return false
}

// locate moves each counter of the call to the latest later window of
// its key holding hits when the clock of this call went back behind an
// admitted op of the key's stripe: Step counts a request whose now lies
// before the window it has seen in that window. It reads at most
// window.MaxScan+1 windows per counter, all in one phase.
func (a *applier) locate() error {
	a.startPhase()
	for ki := range a.keys {
		k := &a.keys[ki]
		if !k.fast || k.local {
			continue
		}
		hw := a.s.high.Latest(k.key)
		if hw == math.MinInt64 {
			continue
		}
		last := window.Start(hw, k.period)
		if last <= k.start {
			continue
		}
		n := (uint64(last) - uint64(k.start)) / uint64(k.period)
		if n > window.MaxScan {
			continue
		}
		for i := uint64(1); i <= n; i++ {
			a.addCmd(ki, cmd{op: cmdGet, key: windowKey(k.key, k.start+int64(i)*k.period)})
		}
	}
	if len(a.cmds) == 0 {
		return nil
	}
	a.s.exec(a.ctx, a.cmds, a.jobs)
	var errs []error
	// The commands of a key are in ascending windows: the last one
	// holding hits wins.
	for ci := range a.cmds {
		c := &a.cmds[ci]
		k := &a.keys[a.cmdKey[ci]]
		if c.err != nil {
			errs = append(errs, a.cmdError(k, c))
			continue
		}
		if c.res != resOK {
			continue
		}
		n, err := parseCount(c.val)
		if err != nil {
			errs = append(errs, fmt.Errorf("memcachestore: key %q (memcached key %q): %w", k.key, c.key, err))
			continue
		}
		if n > 0 {
			k.mkey = c.key
			k.start = window.Start(a.now, k.period) + int64(a.cmdIndexInKey(ci))*k.period
		}
	}
	return errors.Join(errs...)
}

// cmdIndexInKey returns how many windows after the call's own window the
// locate command ci reads: its rank among the commands of its key, plus
// one.
func (a *applier) cmdIndexInKey(ci int) int {
	n := 1
	for j := ci - 1; j >= 0 && a.cmdKey[j] == a.cmdKey[ci]; j-- {
		n++
	}
	return n
}

// raiseHighWater records now for the counters on which an op consumed.
func (a *applier) raiseHighWater() {
	for i := range a.ops {
		if k := &a.keys[a.keyOf[i]]; k.fast && !k.local && a.consumed[i] {
			a.s.high.Raise(k.key, a.now)
		}
	}
}

// countOf checks a count returned by incr or decr.
func (a *applier) countOf(k *keyState, v uint64) (int64, error) {
	if v > uint64(strategies.MaxExact) {
		return 0, fmt.Errorf("memcachestore: key %q (memcached key %q): %w: counter %d out of range", k.key, k.mkey, ErrMalformedState, v)
	}
	return int64(v), nil
}

// parseCount decodes a counter value: decimal digits, possibly padded
// with spaces by memcached's decr.
func parseCount(v []byte) (int64, error) {
	c, err := strconv.ParseUint(string(bytes.TrimRight(v, " ")), 10, 64)
	if err != nil || c > uint64(strategies.MaxExact) {
		return 0, fmt.Errorf("%w: counter %q", ErrMalformedState, v)
	}
	return int64(c), nil
}
