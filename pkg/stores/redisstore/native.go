package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// The native path of counter.go: an Apply call of fixed_window ops on
// distinct keys, without refunds, decided from INCRBY and GET replies.

// applyNative implements Apply for a call whose form cs is native: one
// native call (an INCRBY and a PEXPIRE per op that consumes, a GET per
// other op), then Step from the counts in Go, then, when an op was
// refused or vetoed the call, a second native call that gives the hits
// back.
func (s *Store) applyNative(ctx context.Context, cs *counters, out []strategies.Decision) error {
	c := s.calls.Get().(*call)
	s.buildNative(c, cs, nil)
	if err := s.runNative(ctx, c); err != nil {
		if !c.abandoned.Load() {
			s.putCall(c)
		}
		return err
	}
	// The keys are distinct: op i is key i, whose state before the call
	// is its window and the count before the INCRBY. limiter.Stage
	// decides the call as every store does (all or nothing).
	cs.keyOf, cs.staged = cs.keyOf[:0], cs.staged[:0]
	for i := range cs.ops {
		cs.keyOf = append(cs.keyOf, i)
		cs.staged = append(cs.staged, limiter.Staged{Orig: strategies.State{A: cs.starts[i], B: max(c.counts[i]-c.delta[i], 0)}})
	}
	veto := limiter.Stage(cs.now, cs.ops, cs.keyOf, cs.staged, out)
	var back []int64 // per op, the hits to give back (≤ 0); nil: none
	for i := range cs.ops {
		if h := c.delta[i]; h > 0 && (veto || !out[i].Allowed) {
			if back == nil {
				back = make([]int64, len(cs.ops))
			}
			back[i] = -h
		}
	}
	s.putCall(c)
	if back != nil {
		s.giveBack(ctx, cs, back)
	}
	return nil
}

// giveBack adds back[i] (≤ 0) to the counter of each op i of cs whose
// back is not 0, bounded by the store's timeout even when ctx is done, so
// that a caller that gives up does not leave hits consumed. When it fails
// the hits stay counted until the window ends: later requests may be
// refused that would have passed, never the reverse.
func (s *Store) giveBack(ctx context.Context, cs *counters, back []int64) {
	ctx = context.WithoutCancel(ctx)
	c := s.calls.Get().(*call)
	s.buildNative(c, cs, back)
	if err := s.runNative(ctx, c); err != nil && c.abandoned.Load() {
		return
	}
	s.putCall(c)
}

// buildNative fills c as the native call of cs: with back nil, an INCRBY
// of the hits of every op with 0 < hits ≤ requests and a GET for the
// others; otherwise an INCRBY of back[i] for every op whose back[i] is not
// zero, and nothing for the others.
func (s *Store) buildNative(c *call, cs *counters, back []int64) {
	c.native = true
	c.keys, c.delta, c.ttl, c.counts = c.keys[:0], c.delta[:0], c.ttl[:0], c.counts[:0]
	slack := max(s.slackMs, counterSlackMs)
	for i := range cs.ops {
		op := &cs.ops[i]
		var d int64
		switch {
		case back != nil:
			if back[i] == 0 {
				continue
			}
			d = back[i]
		case op.Hits > 0 && op.Hits <= op.Limit.Requests:
			d = op.Hits
		}
		c.keys = append(c.keys, op.Key)
		c.delta = append(c.delta, d)
		c.ttl = append(c.ttl, ceilDiv(cs.starts[i]+op.Limit.Period-cs.now, 1000)+slack)
		c.counts = append(c.counts, 0)
	}
	c.n = len(c.keys)
}

// ceilDiv returns ⌈a / b⌉ for b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b > 0 {
		q++
	}
	return q
}

// commands appends the commands of the native call c to cmds, built on
// ctx.
func (c *call) commands(ctx context.Context, cmds []redis.Cmder) []redis.Cmder {
	for i := range c.n {
		if c.delta[i] == 0 {
			cmds = append(cmds, redis.NewIntCmd(ctx, "get", &c.keys[i]))
			continue
		}
		cmds = append(cmds,
			redis.NewIntCmd(ctx, "incrby", &c.keys[i], &c.delta[i]),
			redis.NewBoolCmd(ctx, "pexpire", &c.keys[i], &c.ttl[i]))
	}
	return cmds
}

// answerFrom sets c.counts (or c.err) from cmds, whose first commands are
// those that c.commands appended.
func (c *call) answerFrom(ctx context.Context, timeout time.Duration, cmds []redis.Cmder) {
	c.err = nil
	for i := range c.n {
		cmd := cmds[0].(*redis.IntCmd)
		cmds = cmds[1:]
		if c.delta[i] != 0 {
			cmds = cmds[1:] // the PEXPIRE: its failure changes no decision
		}
		v, err := counterOf(ctx, timeout, cmd, c.keys[i])
		if err != nil && c.err == nil {
			c.err = err
		}
		c.counts[i] = v
	}
}

// runNative sends the native call c and sets c.counts: through the
// pipelines when the store batches and the call is light enough (see
// solo), else on its own. On error, c is abandoned (when c.abandoned says
// so) and must not be reused.
func (s *Store) runNative(ctx context.Context, c *call) error {
	if s.batch != nil && c.n <= soloWeight {
		c.sent.Store(false)
		if err := s.send(ctx, c); err != nil {
			return err
		}
		return s.await(ctx, c)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
	defer cancel()
	cmds := c.commands(ctx, make([]redis.Cmder, 0, 2*c.n))
	exec(ctx, s.client, cmds)
	c.answerFrom(ctx, s.timeout, cmds)
	return c.err
}
