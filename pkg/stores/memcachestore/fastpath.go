package memcachestore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync/atomic"

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

// maxScanWindows bounds how many windows a request whose clock went back
// reads to find the latest window of its key holding hits (see
// applier.locate). A clock that went back further counts in the window
// of its own now.
const maxScanWindows = 32

// windowStart returns the start of the window of period w holding at.
func windowStart(at, w int64) int64 {
	m := at % w
	if m < 0 {
		m += w
	}
	return at - m
}

// highWater remembers, per stripe of keys, the latest now at which a
// fixed_window op was admitted, so that a call whose now lies in an
// earlier window knows it must look for a later window holding hits.
// It is safe for concurrent use.
type highWater struct {
	seed  maphash.Seed
	marks [lockStripes]atomic.Int64
}

func newHighWater() *highWater {
	h := &highWater{seed: maphash.MakeSeed()}
	for i := range h.marks {
		h.marks[i].Store(math.MinInt64)
	}
	return h
}

func (h *highWater) mark(key string) *atomic.Int64 {
	return &h.marks[maphash.String(h.seed, key)%lockStripes]
}

// raise records now for key.
func (h *highWater) raise(key string, now int64) {
	m := h.mark(key)
	for {
		old := m.Load()
		if old >= now || m.CompareAndSwap(old, now) {
			return
		}
	}
}

// locate moves each counter of the call to the latest later window of
// its key holding hits when the clock of this call went back behind an
// admitted op of the key's stripe: Step counts a request whose now lies
// before the window it has seen in that window. It reads at most
// maxScanWindows+1 windows per counter, all in one phase.
func (a *applier) locate() error {
	a.startPhase()
	for ki := range a.keys {
		k := &a.keys[ki]
		if !k.fast || k.local {
			continue
		}
		hw := a.s.high.mark(k.key).Load()
		if hw == math.MinInt64 {
			continue
		}
		last := windowStart(hw, k.period)
		if last <= k.start {
			continue
		}
		n := (uint64(last) - uint64(k.start)) / uint64(k.period)
		if n > maxScanWindows {
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
			k.start = windowStart(a.now, k.period) + int64(a.cmdIndexInKey(ci))*k.period
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
			a.s.high.raise(k.key, a.now)
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
