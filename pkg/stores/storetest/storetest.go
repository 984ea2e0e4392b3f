// Package storetest is the conformance suite every limiter.Store runs: the
// shared step tables and properties of all strategies through Store.Apply,
// and the store-level rules of limiter.Store (all or nothing across the
// ops of a call, order on one key, atomicity under concurrency, errors
// after Close and on a cancelled context).
//
// The suite uses only the limiter.Store interface, and every test works on
// keys with a prefix of its own (test name plus a random suffix), so
// stores backed by a shared server (Redis, Memcached) can run it in
// parallel with other suites and repeatedly.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

// Run runs the suite against stores made by newStore, one per subtest.
// Run closes every store it gets (newStore must not register its own
// Close, though it may clean up whatever else it started).
func Run(t *testing.T, newStore func(t *testing.T) limiter.Store) {
	open := func(t *testing.T) limiter.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("Tables", func(t *testing.T) {
		strategytest.RunTables(t, Applier(open(t)))
	})
	t.Run("Properties", func(t *testing.T) {
		strategytest.RunProperties(t, Applier(open(t)), strategytest.Seed(1), strategytest.N(600))
	})
	t.Run("AllOrNothing", func(t *testing.T) { testAllOrNothing(t, open(t)) })
	t.Run("AllOrNothingKeepsLogs", func(t *testing.T) { testAllOrNothingKeepsLogs(t, open(t)) })
	t.Run("IndependentDoesNotVeto", func(t *testing.T) { testIndependent(t, open(t)) })
	t.Run("RefundsAlwaysApply", func(t *testing.T) { testRefunds(t, open(t)) })
	t.Run("SameKeyInOrder", func(t *testing.T) { testSameKey(t, open(t)) })
	t.Run("ConcurrentExact", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("ContextCancelled", func(t *testing.T) { testCancelled(t, open(t)) })
	t.Run("ApplyAfterClose", func(t *testing.T) { testAfterClose(t, newStore(t)) })
}

// Applier returns a strategytest.Applier that sends each request as a call
// of one op to store at the request's time.
func Applier(store limiter.Store) strategytest.Applier {
	return func(t testing.TB, key string, s strategies.Strategy, lim strategies.Limit, now, hits int64) strategies.Decision {
		t.Helper()
		out := make([]strategies.Decision, 1)
		ops := []limiter.Op{{Key: key, Strategy: s, Limit: lim, Hits: hits}}
		if err := store.Apply(context.Background(), now, ops, out); err != nil {
			t.Fatalf("Apply(%q, now %d, hits %d): %v", key, now, hits, err)
		}
		return out[0]
	}
}

// prefix returns a key prefix unique to t and this run.
func prefix(t testing.TB) string {
	return fmt.Sprintf("storetest:%s:%x:", t.Name(), rand.Uint64())
}

// now0 is the suite's clock: the start of a week, so windows of any period
// that divides a week start there.
const now0 = strategytest.T0

// op builds an op of the named strategy on key.
func op(t testing.TB, key, name string, lim strategies.Limit, hits int64) limiter.Op {
	t.Helper()
	s, ok := strategies.Lookup(name)
	if !ok {
		t.Fatalf("strategy %q not registered", name)
	}
	p, err := s.Prepare(lim)
	if err != nil {
		t.Fatalf("Prepare(%+v): %v", lim, err)
	}
	return limiter.Op{Key: key, Strategy: s, Limit: p, Hits: hits}
}

// apply calls store.Apply and fails the test on an error.
func apply(t testing.TB, store limiter.Store, now int64, ops ...limiter.Op) []strategies.Decision {
	t.Helper()
	out := make([]strategies.Decision, len(ops))
	if err := store.Apply(context.Background(), now, ops, out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out
}

// check returns the decision of a check (hits 0) of o's key.
func check(t testing.TB, store limiter.Store, now int64, o limiter.Op) strategies.Decision {
	t.Helper()
	o.Hits = 0
	return apply(t, store, now, o)[0]
}

var perHour = strategies.Limit{Requests: 3, Period: strategies.Hour}

// full returns a fixed_window op on a fresh key whose window is already
// full, so that any op with hits on it is refused.
func full(t testing.TB, store limiter.Store, key string) limiter.Op {
	t.Helper()
	o := op(t, key, "fixed_window", perHour, 3)
	if d := apply(t, store, now0, o)[0]; !d.Allowed {
		t.Fatalf("filling %q: %+v", key, d)
	}
	o.Hits = 1
	return o
}

func testAllOrNothing(t *testing.T, store limiter.Store) {
	p := prefix(t)
	blocked := full(t, store, p+"blocked")
	a := op(t, p+"a", "fixed_window", perHour, 1)
	b := op(t, p+"b", "token_bucket", perHour, 2)
	out := apply(t, store, now0+1, a, blocked, b)
	if out[1].Allowed || out[1].RetryAfter <= 0 {
		t.Fatalf("the full key was not refused: %+v", out[1])
	}
	for i, o := range []limiter.Op{a, b} {
		want := check(t, store, now0+1, o)
		if want.Remaining != 3 {
			t.Errorf("op %s consumed though another op was refused: check %+v", o.Key, want)
		}
		if got := out[2*i]; got != want {
			t.Errorf("op %s reported %+v, want what a check reports: %+v", o.Key, got, want)
		}
	}
}

func testAllOrNothingKeepsLogs(t *testing.T, store limiter.Store) {
	p := prefix(t)
	log := op(t, p+"log", "sliding_window_log", perHour, 1)
	apply(t, store, now0, log)
	blocked := full(t, store, p+"blocked")
	for i := range int64(3) {
		out := apply(t, store, now0+10+i, log, blocked)
		if out[1].Allowed {
			t.Fatalf("the full key was not refused: %+v", out[1])
		}
	}
	if d := check(t, store, now0+20, log); d.Remaining != 2 || d.Reset != strategies.Hour-20 {
		t.Fatalf("log changed by refused calls: check %+v, want Remaining 2, Reset %d", d, strategies.Hour-20)
	}
}

func testIndependent(t *testing.T, store limiter.Store) {
	p := prefix(t)
	shadow := full(t, store, p+"shadow")
	shadow.Independent = true
	a := op(t, p+"a", "fixed_window", perHour, 1)
	out := apply(t, store, now0+1, a, shadow)
	if !out[0].Allowed || out[0].Remaining != 2 {
		t.Errorf("op vetoed by an Independent op: %+v", out[0])
	}
	if out[1].Allowed {
		t.Errorf("the full Independent op was admitted: %+v", out[1])
	}
	if d := check(t, store, now0+2, a); d.Remaining != 2 {
		t.Errorf("check after the call: %+v, want Remaining 2", d)
	}
}

func testRefunds(t *testing.T, store limiter.Store) {
	p := prefix(t)
	a := op(t, p+"a", "fixed_window", perHour, 2)
	apply(t, store, now0, a)
	blocked := full(t, store, p+"blocked")
	a.Hits = -1
	out := apply(t, store, now0+1, a, blocked)
	if !out[0].Allowed || out[0].Remaining != 2 {
		t.Errorf("refund reported %+v, want allowed with Remaining 2", out[0])
	}
	if out[1].Allowed {
		t.Errorf("the full key was admitted: %+v", out[1])
	}
	if d := check(t, store, now0+2, a); d.Remaining != 2 {
		t.Errorf("refund did not apply: check %+v, want Remaining 2", d)
	}
}

func testSameKey(t *testing.T, store limiter.Store) {
	p := prefix(t)
	a := op(t, p+"a", "fixed_window", perHour, 2)
	a1 := a
	a1.Hits = 1
	out := apply(t, store, now0, a, a1)
	if !out[0].Allowed || out[0].Remaining != 1 || !out[1].Allowed || out[1].Remaining != 0 {
		t.Fatalf("two ops on one key: %+v, want remaining 1 then 0", out)
	}

	b := op(t, p+"b", "token_bucket", perHour, 2)
	out = apply(t, store, now0, b, b)
	if !out[0].Allowed || out[1].Allowed {
		t.Fatalf("2 + 2 hits on a bucket of 3: %+v, want the second refused", out)
	}
	if d := check(t, store, now0, b); d.Remaining != 3 || out[0] != d {
		t.Fatalf("refused call consumed or misreported: check %+v, first op %+v", d, out[0])
	}
}

func testConcurrent(t *testing.T, store limiter.Store) {
	const (
		limit      = 500
		goroutines = 32
		calls      = 40
	)
	o := op(t, prefix(t)+"hot", "fixed_window", strategies.Limit{Requests: limit, Period: strategies.Hour}, 1)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]strategies.Decision, 1)
			for c := range calls {
				if err := store.Apply(context.Background(), now0+int64(g*calls+c), []limiter.Op{o}, out); err != nil {
					errs <- err
					return
				}
				if out[0].Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	if got := admitted.Load(); got != limit {
		t.Fatalf("%d goroutines × %d calls admitted %d, want exactly %d", goroutines, calls, got, limit)
	}
	if d := check(t, store, now0+goroutines*calls, o); d.Remaining != 0 {
		t.Fatalf("after the race: %+v, want Remaining 0", d)
	}
}

func testCancelled(t *testing.T, store limiter.Store) {
	o := op(t, prefix(t)+"a", "fixed_window", perHour, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := make([]strategies.Decision, 1)
	err := store.Apply(ctx, now0, []limiter.Op{o}, out)
	if !errors.Is(err, context.Canceled) || errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Apply with a cancelled context = %v, want an error wrapping context.Canceled and not limiter.ErrUnavailable (the caller gave up; the store is fine)", err)
	}
	if d := check(t, store, now0, o); d.Remaining != 3 {
		t.Fatalf("a cancelled call consumed: check %+v", d)
	}
}

func testAfterClose(t *testing.T, store limiter.Store) {
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	o := op(t, prefix(t)+"a", "fixed_window", perHour, 1)
	out := make([]strategies.Decision, 1)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Apply after Close panicked: %v", r)
			}
		}()
		err = store.Apply(context.Background(), now0, []limiter.Op{o}, out)
	}()
	if err == nil {
		t.Fatalf("Apply after Close succeeded: %+v", out[0])
	}
}
