package memcachestore

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

// TestFixedWindowMatchesStep sends random calls of one to three
// fixed_window ops (checks, refunds, hits beyond the limit, several ops on
// one key, vetoes between keys) at non-decreasing times and requires the
// decisions of the counter path to equal those of a model that steps
// strategies.FixedWindow on one State per key with the all-or-nothing
// rule of limiter.Store.
func TestFixedWindowMatchesStep(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	s := newStore(t, addrs, Options{})
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, 11))
	fw := strategies.FixedWindow{}
	periods := []int64{997, 10*strategies.Millisecond + 7, strategies.Second}
	now := strategytest.T0
	for seq := range 30 {
		p := testPrefix()
		keys := []string{p + "a", p + "b", p + "c"}
		lims := make([]strategies.Limit, len(keys))
		model := make([]strategies.State, len(keys))
		for i := range lims {
			raw := strategies.Limit{Requests: int64(rng.IntN(6)), Period: periods[rng.IntN(len(periods))]}
			lim, err := fw.Prepare(raw)
			if err != nil {
				t.Fatal(err)
			}
			lims[i] = lim
		}
		for call := range 60 {
			now += rng.Int64N(lims[0].Period/2 + 1)
			n := 1 + rng.IntN(3)
			ops := make([]limiter.Op, n)
			idx := make([]int, n)
			for j := range ops {
				ki := rng.IntN(len(keys))
				var hits int64
				switch x := rng.IntN(10); {
				case x == 0:
					hits = 0
				case x == 1:
					hits = -1 - rng.Int64N(3)
				case x == 2:
					hits = lims[ki].Requests + 1
				default:
					hits = 1 + rng.Int64N(2)
				}
				idx[j] = ki
				ops[j] = limiter.Op{Key: keys[ki], Strategy: fw, Limit: lims[ki], Hits: hits, Independent: rng.IntN(8) == 0}
			}
			want, next := modelApply(model, now, ops, idx)
			got := applyOK(t, s, now, ops...)
			for j := range ops {
				if got[j] != want[j] {
					t.Fatalf("sequence %d call %d at %d: ops %+v\nop %d got  %+v\nwant %+v", seq, call, now, ops, j, got[j], want[j])
				}
			}
			model = next
		}
	}
}

// modelApply steps ops on copies of the states with the all-or-nothing
// rule, as the compare-and-swap path does: a first pass with every op's
// hits; when a non-Independent op with hits is refused, a second pass in
// which admitted ops step as checks and refused ones keep their
// decisions.
func modelApply(states []strategies.State, now int64, ops []limiter.Op, idx []int) ([]strategies.Decision, []strategies.State) {
	out := make([]strategies.Decision, len(ops))
	denied := make([]bool, len(ops))
	pass := func(veto bool) []strategies.State {
		st := append([]strategies.State(nil), states...)
		for j, op := range ops {
			hits := op.Hits
			if veto && hits > 0 {
				if denied[j] {
					continue
				}
				hits = 0
			}
			var d strategies.Decision
			next, d := op.Strategy.Step(st[idx[j]], now, op.Limit, hits)
			if hits != 0 && (hits < 0 || d.Allowed) {
				st[idx[j]] = next
			}
			out[j] = d
			if !veto {
				denied[j] = hits > 0 && !d.Allowed
			}
		}
		return st
	}
	st := pass(false)
	for j, op := range ops {
		if denied[j] && !op.Independent {
			return out, pass(true)
		}
	}
	return out, st
}

// TestFixedWindowMalformedCounter stores a non-numeric value where a
// fixed_window counter belongs and expects ErrMalformedState naming the
// key.
func TestFixedWindowMalformedCounter(t *testing.T) {
	srv := testservers.Memcached(t)
	s := newStore(t, []string{srv.Addr}, Options{})
	defer s.Close()
	key := testPrefix() + "bad counter"
	lim := strategies.Limit{Requests: 3, Period: strategies.Hour}
	now := strategytest.T0
	mc := memcache.New(srv.Addr)
	defer mc.Close()
	if err := mc.Set(&memcache.Item{Key: windowKey(key, window.Start(now, lim.Period)), Value: []byte("not a number")}); err != nil {
		t.Fatal(err)
	}
	for _, hits := range []int64{1, 0, -1} {
		out := make([]strategies.Decision, 1)
		err := s.Apply(context.Background(), now, []limiter.Op{mustOp(t, key, "fixed_window", lim, hits)}, out)
		if !errors.Is(err, ErrMalformedState) || !strings.Contains(err.Error(), "bad counter") {
			t.Errorf("hits %d on a malformed counter = %v, want ErrMalformedState naming the key", hits, err)
		}
	}
}

// TestMixedLateVeto makes a compare-and-swap key lose a race against a
// write of another Store while the call also holds a fixed_window
// counter: when the re-stepped key refuses, the counter's hit is given
// back.
func TestMixedLateVeto(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	const rounds = 20
	now := strategytest.T0
	for r := range rounds {
		p := testPrefix()
		shared := mustOp(t, p+"shared", "token_bucket", strategies.Limit{Requests: 1, Period: strategies.Hour}, 1)
		own := []limiter.Op{
			mustOp(t, p+"own0", "fixed_window", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1),
			mustOp(t, p+"own1", "fixed_window", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1),
		}
		outs := make([][]strategies.Decision, 2)
		errs := make([]error, 2)
		done := make(chan int)
		for i := range 2 {
			st := newStore(t, addrs, Options{MaxRetries: 1000})
			defer st.Close()
			go func() {
				outs[i] = make([]strategies.Decision, 2)
				errs[i] = st.Apply(context.Background(), now, []limiter.Op{own[i], shared}, outs[i])
				done <- i
			}()
		}
		<-done
		<-done
		s := newStore(t, addrs, Options{})
		defer s.Close()
		won := 0
		for i := range 2 {
			if errs[i] != nil {
				t.Fatalf("round %d: Apply %d: %v", r, i, errs[i])
			}
			check := own[i]
			check.Hits = 0
			rem := applyOK(t, s, now, check)[0].Remaining
			if outs[i][1].Allowed {
				won++
				if rem != 4 || outs[i][0].Remaining != 4 {
					t.Errorf("round %d: winner %d: own op %+v, Remaining %d after; want 4", r, i, outs[i][0], rem)
				}
			} else if rem != 5 || outs[i][0].Remaining != 5 || !outs[i][0].Allowed {
				t.Errorf("round %d: loser %d: own op %+v, Remaining %d after; want a check with 5 (nothing consumed)", r, i, outs[i][0], rem)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d requests admitted on a key with room for one", r, won)
		}
	}
}
