package redisstore

import (
	"context"
	"sync"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// slotGroup is the ops of one Apply call that hash to one cluster slot,
// in call order.
type slotGroup struct {
	slot   uint16
	idx    []int // indexes in the call's ops
	ops    []limiter.Op
	starts []int64 // the window starts of counter ops (counter.go), or nil
	call   *call
	out    []strategies.Decision
	err    error
	vetos  bool // an op of the group vetoes the call (limiter.Vetoes)
}

// applyCluster implements Apply in cluster mode for calls that run the
// script; see Apply.
func (s *Store) applyCluster(ctx context.Context, cs *counters, out []strategies.Decision) error {
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
	defer cancel()
	now := cs.now
	groups := groupBySlot(cs.ops, cs.starts)
	defer func() {
		for _, g := range groups {
			if g.call != nil {
				s.putCall(g.call)
			}
		}
	}()
	for _, g := range groups {
		// Build every group's arguments before any I/O, so that a bad op
		// fails the call before anything is consumed.
		c, err := s.getCall(now, g.ops, g.starts, nil)
		if err != nil {
			return err
		}
		g.call = c
		g.out = make([]strategies.Decision, len(g.ops))
	}
	calls := make([]*call, len(groups))
	for i, g := range groups {
		calls[i] = g.call
	}
	errs := s.runCalls(ctx, calls)
	for i, g := range groups {
		g.call = calls[i] // nil when abandoned
		if g.err = errs[i]; g.err == nil {
			g.err = decode(g.call, g.out)
		}
	}
	var firstErr error
	veto := false
	for _, g := range groups {
		if g.err != nil {
			if firstErr == nil {
				firstErr = g.err
			}
			continue
		}
		for j := range g.ops {
			if limiter.Vetoes(&g.ops[j], &g.out[j]) {
				g.vetos = true
				veto = true
			}
		}
	}
	if firstErr != nil {
		// No decision for the whole call: give back what the groups that
		// answered consumed (best effort: when the context has expired the
		// refunds fail too, and the consumption stays).
		s.refund(ctx, now, groups)
		return firstErr
	}
	if veto {
		s.refund(ctx, now, groups)
	}
	for _, g := range groups {
		for j, i := range g.idx {
			out[i] = g.out[j]
		}
	}
	return nil
}

// refund gives back what the groups that did not veto (and did not
// fail) consumed, and replaces their admitted ops' decisions (and their
// checks') by a check after the refund, in one script call per group.
func (s *Store) refund(ctx context.Context, now int64, groups []*slotGroup) {
	var todo []*slotGroup
	var calls []*call
	var checks [][]int // per group of todo, the index in g.ops of each check
	var nRefunds []int
	for _, g := range groups {
		if g.vetos || !consumed(g) {
			continue
		}
		// Refunds first, then a check for every admitted op and every
		// check, so that each check sees all the refunds.
		var ops []limiter.Op
		var hits, starts []int64
		var chk []int
		start := func(j int) int64 {
			if g.starts == nil {
				return 0
			}
			return g.starts[j]
		}
		for j := range g.ops {
			if op := g.ops[j]; op.Hits > 0 && g.out[j].Allowed {
				ops, hits, starts = append(ops, op), append(hits, -op.Hits), append(starts, start(j))
			}
		}
		n := len(ops)
		for j := range g.ops {
			if op := g.ops[j]; op.Hits == 0 || (op.Hits > 0 && g.out[j].Allowed) {
				ops, hits, starts = append(ops, op), append(hits, 0), append(starts, start(j))
				chk = append(chk, j)
			}
		}
		c, err := s.getCall(now, ops, starts, hits)
		if err != nil {
			continue // cannot happen: the same ops built the consuming call
		}
		todo, calls = append(todo, g), append(calls, c)
		checks, nRefunds = append(checks, chk), append(nRefunds, n)
	}
	if len(todo) == 0 {
		return
	}
	errs := s.runCalls(ctx, calls)
	for i, g := range todo {
		c := calls[i]
		if c == nil {
			continue // abandoned
		}
		if errs[i] == nil {
			res := make([]strategies.Decision, c.n)
			if decode(c, res) == nil {
				for k, j := range checks[i] {
					g.out[j] = res[nRefunds[i]+k]
				}
			}
		}
		s.putCall(c)
	}
}

// runCalls runs every call: through the pipelines when the store batches
// (all queued before any is waited for, so that they share round trips),
// else each on its own, in parallel. It returns each call's error. A call
// whose caller gave up waiting is abandoned and set to nil in calls: it
// must not be reused.
func (s *Store) runCalls(ctx context.Context, calls []*call) []error {
	errs := make([]error, len(calls))
	if s.batch == nil {
		var wg sync.WaitGroup
		for i, c := range calls[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i+1] = s.run(ctx, c)
			}()
		}
		errs[0] = s.run(ctx, calls[0])
		wg.Wait()
		return errs
	}
	sent := make([]bool, len(calls))
	for i, c := range calls {
		if errs[i] = s.send(ctx, c); errs[i] == nil {
			sent[i] = true
		}
	}
	for i, c := range calls {
		if !sent[i] {
			continue
		}
		if errs[i] = s.await(ctx, c); errs[i] != nil && c.abandoned.Load() {
			calls[i] = nil
		}
	}
	return errs
}

// consumed reports whether g admitted an op with Hits > 0.
func consumed(g *slotGroup) bool {
	for j := range g.ops {
		if limiter.Consumed(&g.ops[j], &g.out[j], false) {
			return true
		}
	}
	return false
}

// groupBySlot splits ops (and the window starts of their counter ops,
// when not nil) by the cluster hash slot of their keys, keeping the call
// order within each group and ordering groups by first use.
func groupBySlot(ops []limiter.Op, starts []int64) []*slotGroup {
	var groups []*slotGroup
	for i := range ops {
		slot := hashSlot(ops[i].Key)
		var g *slotGroup
		for _, x := range groups {
			if x.slot == slot {
				g = x
				break
			}
		}
		if g == nil {
			g = &slotGroup{slot: slot}
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.ops = append(g.ops, ops[i])
		if starts != nil {
			g.starts = append(g.starts, starts[i])
		}
	}
	return groups
}
