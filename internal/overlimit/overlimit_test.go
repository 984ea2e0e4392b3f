package overlimit

import (
	"context"
	"math/rand"
	"sync/atomic"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// counting counts the ops that reach the wrapped store.
type counting struct {
	limiter.Store
	ops atomic.Int64
}

func (c *counting) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	c.ops.Add(int64(len(ops)))
	return c.Store.Apply(ctx, now, ops, out)
}

func op(t testing.TB, key, strategy string, l, w, hits int64) limiter.Op {
	s, ok := strategies.Lookup(strategy)
	if !ok {
		t.Fatalf("no strategy %s", strategy)
	}
	lim, err := s.Prepare(strategies.Limit{Requests: l, Period: w})
	if err != nil {
		t.Fatal(err)
	}
	return limiter.Op{Key: key, Strategy: s, Limit: lim, Hits: hits}
}

func apply(t *testing.T, s limiter.Store, now int64, ops ...limiter.Op) []strategies.Decision {
	t.Helper()
	out := make([]strategies.Decision, len(ops))
	if err := s.Apply(context.Background(), now, ops, out); err != nil {
		t.Fatal(err)
	}
	return out
}

const t0 = 1_700_000_000 * strategies.Second

func TestCachedKeyIsAnsweredLocally(t *testing.T) {
	mem := memory.New(memory.Options{})
	defer mem.Close()
	c := &counting{Store: mem}
	var hits atomic.Int64
	s := New(c, 100, func() { hits.Add(1) })
	a := op(t, "a", "fixed_window", 2, strategies.Minute, 1)
	apply(t, s, t0, a)
	apply(t, s, t0, a)
	if d := apply(t, s, t0, a)[0]; d.Allowed {
		t.Fatal("third request admitted")
	}
	before := c.ops.Load()
	d := apply(t, s, t0+strategies.Second, a)[0]
	windowEnd := t0 - t0%strategies.Minute + strategies.Minute
	if d.Allowed || d.RetryAfter != windowEnd-t0-strategies.Second || c.ops.Load() != before || hits.Load() != 1 {
		t.Fatalf("cached answer %+v, store ops %d→%d, hits %d", d, before, c.ops.Load(), hits.Load())
	}
	// A check (hits 0) and a refund always reach the store.
	apply(t, s, t0+strategies.Second, op(t, "a", "fixed_window", 2, strategies.Minute, 0))
	if c.ops.Load() != before+1 {
		t.Fatal("a check was answered from the cache")
	}
	// After the retry-after the store decides again.
	if d := apply(t, s, windowEnd, a)[0]; !d.Allowed {
		t.Fatalf("new window: %+v", d)
	}
	if n := s.size(); n != 0 {
		t.Fatalf("expired key kept: %d", n)
	}
}

func TestCachedVetoConsumesNothingElsewhere(t *testing.T) {
	mem := memory.New(memory.Options{})
	defer mem.Close()
	s := New(mem, 100, nil)
	a := op(t, "a", "fixed_window", 1, strategies.Minute, 1)
	b := op(t, "b", "fixed_window", 5, strategies.Minute, 1)
	apply(t, s, t0, a)
	apply(t, s, t0, a) // denied: a is cached
	out := apply(t, s, t0, a, b)
	if out[0].Allowed || !out[1].Allowed || out[1].Remaining != 5 {
		t.Fatalf("veto: %+v", out)
	}
	if d := apply(t, s, t0, b)[0]; d.Remaining != 4 {
		t.Fatalf("b was consumed by a vetoed request: %+v", d)
	}
}

// The cache never changes a decision: the same random traffic through a
// cached and a plain store gets the same answers.
func TestCacheNeverChangesADecision(t *testing.T) {
	for _, strategy := range []string{"fixed_window", "token_bucket", "gcra", "sliding_window_log", "sliding_window_counter"} {
		plain := memory.New(memory.Options{})
		mem := memory.New(memory.Options{})
		var hits atomic.Int64
		cached := New(mem, 8, func() { hits.Add(1) })
		rng := rand.New(rand.NewSource(1))
		now := t0
		for i := 0; i < 20000; i++ {
			now += rng.Int63n(80 * strategies.Millisecond)
			key := string(rune('a' + rng.Intn(3)))
			hits := int64(1)
			if rng.Intn(10) == 0 {
				hits = rng.Int63n(4)
			}
			o := op(t, key, strategy, 5, strategies.Second, hits)
			want := apply(t, plain, now, o)[0]
			got := apply(t, cached, now, o)[0]
			if want.Allowed != got.Allowed {
				t.Fatalf("%s step %d (key %s, hits %d): plain %+v, cached %+v", strategy, i, key, hits, want, got)
			}
		}
		if hits.Load() == 0 {
			t.Errorf("%s: the cache never answered", strategy)
		}
		plain.Close()
		mem.Close()
	}
}

// size returns the number of keys s caches.
func (s *Store) size() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
	return n
}
