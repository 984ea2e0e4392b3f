package memcachestore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// The fixed_window counter path.
//
// A fixed_window key is not stored as an encoded state under its own
// memcached key, but as one decimal counter per window under
// windowKey(key, window start), which expires with the window. A request
// then costs one incr (add on a miss) in the common case: the counter
// before the incr is the state the strategy's Step sees, so the decision
// is exactly Step's. A request that does not fit gives its hits back
// with a decr. Checks and requests that exceed the limit read the counter
// with a get; refunds decr it (memcached's decr stops at 0, as Step's
// refund does).
//
// Between an incr and the decr that gives back a refused request's hits,
// other requests on the key may see a count above the limit and be
// refused too (never admitted beyond the limit); the same holds for the
// hits taken back when another op of the call vetoes the request.

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
// fastGroup.locate). A clock that went back further counts in the window
// of its own now.
const maxScanWindows = 32

// fastGroup is the fixed_window ops of one Apply call on one key and
// period. When the ops include no refund (batch), they cost one incr of
// their summed hits (or one get), after which Step decides each op in
// order from the count read; otherwise each op is its own round trip.
type fastGroup struct {
	key   string           // the store key
	lim   strategies.Limit // of the group's first op, for its period
	start int64            // the window the ops count in
	mkey  string           // windowKey(key, start)
	ops   []int            // indices of the ops, in order
	// batch reports that no op refunds.
	batch bool
	// local reports a period that Step decides without state.
	local bool
	// consumed is the hits this call holds on the counter: all hits of a
	// batch's incr until they are given back, the admitted ones after.
	consumed int64
	// admitted is the hits of the ops admitted (before any veto).
	admitted int64
}

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

// fastRun applies the ops of g and writes their decisions. It runs
// concurrently with other groups and touches only g and its ops'
// entries of out, denied and fprev.
func (a *applier) fastRun(g *fastGroup) error {
	if g.local {
		for _, oi := range g.ops {
			op := &a.ops[oi]
			_, a.out[oi] = op.Strategy.Step(strategies.State{}, a.now, op.Limit, op.Hits)
			a.denied[oi] = op.Hits > 0 && !a.out[oi].Allowed
		}
		return nil
	}
	if err := a.locate(g); err != nil {
		return err
	}
	if g.batch {
		return a.fastBatch(g)
	}
	for _, oi := range g.ops {
		if err := a.fastOne(g, oi); err != nil {
			return err
		}
	}
	if g.admitted > 0 {
		a.s.high.raise(g.key, a.now)
	}
	return nil
}

// locate moves g to the latest later window of its key holding hits when
// the clock of this call went back behind an admitted op of the key's
// stripe: Step counts a request whose now lies before the window it has
// seen in that window. It reads at most maxScanWindows+1 windows in one
// multi-get.
func (a *applier) locate(g *fastGroup) error {
	w := g.lim.Period
	hw := a.s.high.mark(g.key).Load()
	if hw == math.MinInt64 {
		return nil
	}
	last := windowStart(hw, w)
	if last <= g.start {
		return nil
	}
	n := (uint64(last) - uint64(g.start)) / uint64(w)
	if n > maxScanWindows {
		return nil
	}
	mkeys := make([]string, n+1)
	for i := range mkeys {
		mkeys[i] = windowKey(g.key, g.start+int64(i)*w)
	}
	if err := a.check("get", g.key); err != nil {
		return err
	}
	items, err := a.s.mc.GetMulti(mkeys)
	if err != nil {
		return unavailable("get", g.key, err)
	}
	for i := len(mkeys) - 1; i > 0; i-- {
		it := items[mkeys[i]]
		if it == nil {
			continue
		}
		c, err := parseCount(it.Value)
		if err != nil {
			return fmt.Errorf("memcachestore: key %q (memcached key %q): %w", g.key, mkeys[i], err)
		}
		if c > 0 {
			g.start, g.mkey = g.start+int64(i)*w, mkeys[i]
			return nil
		}
	}
	return nil
}

// fastBatch applies a group without refunds: one incr of the hits of its
// ops that can fit at all (or one get when there are none), then Step
// from the count before the incr for each op in order.
func (a *applier) fastBatch(g *fastGroup) error {
	var sum int64
	for _, oi := range g.ops {
		if h := a.ops[oi].Hits; h > 0 && h <= a.ops[oi].Limit.Requests {
			sum += h
		}
	}
	var base int64
	var err error
	if sum > 0 {
		base, err = a.incr(g, sum)
		if err == nil {
			g.consumed = sum
			base -= sum
		}
	} else {
		base, err = a.count(g)
	}
	if err != nil {
		return err
	}
	st := strategies.State{A: g.start, B: base}
	for _, oi := range g.ops {
		op := &a.ops[oi]
		a.fprev[oi] = base
		next, d := op.Strategy.Step(st, a.now, op.Limit, op.Hits)
		a.out[oi] = d
		a.denied[oi] = op.Hits > 0 && !d.Allowed
		if op.Hits > 0 && d.Allowed {
			g.admitted += op.Hits
		}
		st = next
	}
	if g.admitted > 0 {
		a.s.high.raise(g.key, a.now)
	}
	return nil
}

// fastOne applies one op of a group holding refunds, in its own round
// trip: incr for hits that can fit (and decr of them when refused), decr
// for a refund, get otherwise.
func (a *applier) fastOne(g *fastGroup, oi int) error {
	op := &a.ops[oi]
	h := op.Hits
	var prev int64
	switch {
	case h > 0 && h <= op.Limit.Requests:
		v, err := a.incr(g, h)
		if err != nil {
			return err
		}
		prev = v - h
		g.consumed += h
	case h < 0:
		v, found, err := a.decr(g, -h)
		if err != nil {
			return err
		}
		if found {
			// v is max(before+h, 0); any before ≥ v−h steps to v.
			prev = v - h
		}
	default:
		c, err := a.count(g)
		if err != nil {
			return err
		}
		prev = c
	}
	_, d := op.Strategy.Step(strategies.State{A: g.start, B: prev}, a.now, op.Limit, h)
	a.out[oi] = d
	a.denied[oi] = h > 0 && !d.Allowed
	a.fprev[oi] = max(prev-g.admitted, 0)
	if h > 0 && h <= op.Limit.Requests {
		if d.Allowed {
			g.admitted += h
		} else {
			if _, _, err := a.decr(g, h); err != nil {
				return err
			}
			g.consumed -= h
		}
	}
	return nil
}

// fastVetoes reports whether a non-Independent op of g with hits was
// refused.
func (a *applier) fastVetoes(g *fastGroup) bool {
	for _, oi := range g.ops {
		if a.denied[oi] && !a.ops[oi].Independent {
			return true
		}
	}
	return false
}

// fastVeto re-decides the ops of g as the all-or-nothing rule requires
// once the call is vetoed: from the count each op found, less the hits of
// earlier admitted ops of the call, admitted ops and checks step as
// checks and refunds as refunds; refused ops keep their decisions.
func (a *applier) fastVeto(g *fastGroup) {
	if g.local {
		return
	}
	for _, oi := range g.ops {
		op := &a.ops[oi]
		if a.denied[oi] {
			continue
		}
		_, a.out[oi] = op.Strategy.Step(strategies.State{A: g.start, B: a.fprev[oi]}, a.now, op.Limit, min(op.Hits, 0))
	}
}

// giveBack decrements g's counter until this call holds keep hits on it.
func (a *applier) giveBack(g *fastGroup, keep int64) error {
	n := g.consumed - keep
	if n <= 0 {
		return nil
	}
	if _, _, err := a.decr(g, n); err != nil {
		return err
	}
	g.consumed = keep
	return nil
}

// incr adds n to g's counter, creating it (expiring with the window) when
// missing, and returns the new count.
func (a *applier) incr(g *fastGroup, n int64) (int64, error) {
	for attempt := 0; ; attempt++ {
		if err := a.check("incr", g.key); err != nil {
			return 0, err
		}
		v, err := a.s.mc.Increment(g.mkey, uint64(n))
		if err == nil {
			return a.countOf(g, v)
		}
		if !errors.Is(err, memcache.ErrCacheMiss) {
			return 0, a.counterError("incr", g, err)
		}
		exp, _ := expiration(a.now, g.start+g.lim.Period-a.now)
		if err := a.check("add", g.key); err != nil {
			return 0, err
		}
		var buf [20]byte
		err = a.s.mc.Add(&memcache.Item{Key: g.mkey, Value: strconv.AppendInt(buf[:0], n, 10), Expiration: exp})
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return 0, unavailable("add", g.key, err)
		}
		// Added by another call since the incr: incr again.
		if attempt >= a.s.maxRetries {
			return 0, contention("add", g.key, attempt)
		}
	}
}

// decr subtracts n from g's counter (memcached stops at 0) and returns
// the new count; found is false when the counter does not exist.
func (a *applier) decr(g *fastGroup, n int64) (v int64, found bool, err error) {
	if err := a.check("decr", g.key); err != nil {
		return 0, false, err
	}
	u, err := a.s.mc.Decrement(g.mkey, uint64(n))
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return 0, false, nil
	case err != nil:
		return 0, false, a.counterError("decr", g, err)
	}
	v, err = a.countOf(g, u)
	return v, err == nil, err
}

// count reads g's counter; a missing counter is 0.
func (a *applier) count(g *fastGroup) (int64, error) {
	if err := a.check("get", g.key); err != nil {
		return 0, err
	}
	it, err := a.s.mc.Get(g.mkey)
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return 0, nil
	case err != nil:
		return 0, unavailable("get", g.key, err)
	}
	c, err := parseCount(it.Value)
	if err != nil {
		return 0, fmt.Errorf("memcachestore: key %q (memcached key %q): %w", g.key, g.mkey, err)
	}
	return c, nil
}

// countOf checks a count returned by incr or decr.
func (a *applier) countOf(g *fastGroup, v uint64) (int64, error) {
	if v > uint64(strategies.MaxExact) {
		return 0, fmt.Errorf("memcachestore: key %q (memcached key %q): %w: counter %d out of range", g.key, g.mkey, ErrMalformedState, v)
	}
	return int64(v), nil
}

// counterError classifies an incr or decr error: memcached answers a
// client error when the stored value is not a decimal counter (written by
// another program), which is a malformed state, not an outage.
func (a *applier) counterError(what string, g *fastGroup, err error) error {
	if strings.HasPrefix(err.Error(), "memcache: client error") {
		return fmt.Errorf("memcachestore: %s key %q (memcached key %q): %w: %w", what, g.key, g.mkey, ErrMalformedState, err)
	}
	return unavailable(what, g.key, err)
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
