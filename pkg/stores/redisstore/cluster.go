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
	slot  uint16
	idx   []int // indexes in the call's ops
	ops   []limiter.Op
	call  *call
	out   []strategies.Decision
	err   error
	vetos bool // refused an op that is not Independent and has Hits > 0
}

// applyCluster implements Apply in cluster mode; see Apply.
func (s *Store) applyCluster(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	groups := groupBySlot(ops)
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
		c, err := s.getCall(now, g.ops, nil)
		if err != nil {
			return err
		}
		g.call = c
		g.out = make([]strategies.Decision, len(g.ops))
	}
	s.parallel(ctx, groups, func(ctx context.Context, g *slotGroup) error {
		if err := s.run(ctx, g.call); err != nil {
			return err
		}
		return decode(g.call, g.out)
	})
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
			if op := &g.ops[j]; op.Hits > 0 && !g.out[j].Allowed && !op.Independent {
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
	for _, g := range groups {
		if !g.vetos && consumed(g) {
			todo = append(todo, g)
		}
	}
	if len(todo) == 0 {
		return
	}
	s.parallel(ctx, todo, func(ctx context.Context, g *slotGroup) error {
		// Refunds first, then a check for every admitted op and every
		// check, so that each check sees all the refunds.
		var ops []limiter.Op
		var hits []int64
		var checks []int // index in g.ops of each check
		for j := range g.ops {
			if op := g.ops[j]; op.Hits > 0 && g.out[j].Allowed {
				ops, hits = append(ops, op), append(hits, -op.Hits)
			}
		}
		nRefunds := len(ops)
		for j := range g.ops {
			if op := g.ops[j]; op.Hits == 0 || (op.Hits > 0 && g.out[j].Allowed) {
				ops, hits = append(ops, op), append(hits, 0)
				checks = append(checks, j)
			}
		}
		c, err := s.getCall(now, ops, hits)
		if err != nil {
			return err
		}
		defer s.putCall(c)
		res := make([]strategies.Decision, len(ops))
		if err := s.run(ctx, c); err != nil {
			return err
		}
		if err := decode(c, res); err != nil {
			return err
		}
		for c, j := range checks {
			g.out[j] = res[nRefunds+c]
		}
		return nil
	})
}

// consumed reports whether g admitted an op with Hits > 0.
func consumed(g *slotGroup) bool {
	for j := range g.ops {
		if g.ops[j].Hits > 0 && g.out[j].Allowed {
			return true
		}
	}
	return false
}

// parallel runs f for every group, the first in the calling goroutine and
// the others in goroutines it waits for, and stores f's error in the
// group.
func (s *Store) parallel(ctx context.Context, groups []*slotGroup, f func(context.Context, *slotGroup) error) {
	var wg sync.WaitGroup
	for _, g := range groups[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.err = f(ctx, g)
		}()
	}
	groups[0].err = f(ctx, groups[0])
	wg.Wait()
}

// groupBySlot splits ops by the cluster hash slot of their keys, keeping
// the call order within each group and ordering groups by first use.
func groupBySlot(ops []limiter.Op) []*slotGroup {
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
	}
	return groups
}
