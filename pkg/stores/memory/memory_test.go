package memory_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/memory"
	"github.com/envoy-rls/envoy-rls/pkg/stores/storetest"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return memory.New(memory.Options{})
	})
}

// TestConformanceBusySweeper runs the suite with few shards and a sweeper
// that runs every millisecond, so that locking order across shards and
// sweeping in the middle of traffic are exercised too.
func TestConformanceBusySweeper(t *testing.T) {
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return memory.New(memory.Options{Shards: 3, SweepInterval: time.Millisecond})
	})
}

const t0 = strategytest.T0

func fixedOp(t testing.TB, key string, requests int64, hits int64) limiter.Op {
	t.Helper()
	s, _ := strategies.Lookup("fixed_window")
	lim, err := s.Prepare(strategies.Limit{Requests: requests, Period: strategies.Second})
	if err != nil {
		t.Fatal(err)
	}
	return limiter.Op{Key: key, Strategy: s, Limit: lim, Hits: hits}
}

func mustApply(t testing.TB, s *memory.Store, now int64, ops ...limiter.Op) []strategies.Decision {
	t.Helper()
	out := make([]strategies.Decision, len(ops))
	if err := s.Apply(context.Background(), now, ops, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSweepRemovesExpired: entries go once the largest now seen passes
// their expiry, not before; a state with TTL 0 is never stored.
func TestSweepRemovesExpired(t *testing.T) {
	s := memory.New(memory.Options{})
	defer s.Close()
	mustApply(t, s, t0, fixedOp(t, "a", 5, 1))                            // expires at t0+1s
	mustApply(t, s, t0+500*strategies.Millisecond, fixedOp(t, "b", 5, 1)) // same window
	mustApply(t, s, t0, fixedOp(t, "c", 5, 0))                            // a check: TTL 0
	if got := s.Stats().Keys; got != 2 {
		t.Fatalf("Keys = %d, want 2", got)
	}
	s.Sweep()
	if got := s.Stats().Keys; got != 2 {
		t.Fatalf("after an early sweep Keys = %d, want 2", got)
	}
	mustApply(t, s, t0+strategies.Second, fixedOp(t, "d", 5, 0))
	s.Sweep()
	if got := s.Stats().Keys; got != 0 {
		t.Fatalf("after the window Keys = %d, want 0", got)
	}
}

// TestSweeperRuns: the background sweeper uses the Apply clock.
func TestSweeperRuns(t *testing.T) {
	s := memory.New(memory.Options{SweepInterval: time.Millisecond})
	defer s.Close()
	mustApply(t, s, t0, fixedOp(t, "a", 5, 1))
	time.Sleep(20 * time.Millisecond)
	if got := s.Stats().Keys; got != 1 {
		t.Fatalf("swept a live key: Keys = %d", got)
	}
	mustApply(t, s, t0+strategies.Hour, fixedOp(t, "b", 5, 0))
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Keys != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sweeper did not remove the expired key: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// settledGoroutines waits until the number of goroutines stops falling
// (goroutines of earlier tests finishing) and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// TestCloseStopsSweeper: Close waits for the sweeper; no goroutine is
// left behind.
func TestCloseStopsSweeper(t *testing.T) {
	before := settledGoroutines()
	stores := make([]*memory.Store, 20)
	for i := range stores {
		stores[i] = memory.New(memory.Options{SweepInterval: time.Millisecond})
	}
	if runtime.NumGoroutine() < before+len(stores) {
		t.Fatalf("expected a sweeper goroutine per store")
	}
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	// Goroutines of earlier tests may still be finishing: allow them to
	// settle, but the sweepers must be gone.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("goroutines: %d before, %d after Close", before, after)
	}
}

// TestEviction: a full store evicts (counting it) and the evicted key
// starts fresh; expired entries are dropped before live ones.
func TestEviction(t *testing.T) {
	s := memory.New(memory.Options{MaxKeys: 4, Shards: 1})
	defer s.Close()
	for i := range 4 {
		mustApply(t, s, t0, fixedOp(t, strconv.Itoa(i), 1, 1))
	}
	if st := s.Stats(); st.Keys != 4 || st.Evictions != 0 {
		t.Fatalf("stats %+v, want 4 keys, no evictions", st)
	}
	mustApply(t, s, t0, fixedOp(t, "new", 1, 1))
	if st := s.Stats(); st.Keys != 4 || st.Evictions != 1 {
		t.Fatalf("stats %+v, want 4 keys, 1 eviction", st)
	}
	fresh := 0
	for i := range 4 {
		if d := mustApply(t, s, t0, fixedOp(t, strconv.Itoa(i), 1, 0))[0]; d.Remaining == 1 {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d keys read fresh, want exactly the evicted one", fresh)
	}
	// In the next window every entry is expired: inserting drops those,
	// not live ones.
	before := s.Stats().Evictions
	for i := range 4 {
		mustApply(t, s, t0+strategies.Second, fixedOp(t, "next"+strconv.Itoa(i), 1, 1))
	}
	if st := s.Stats(); st.Evictions != before || st.Keys > 4 {
		t.Fatalf("stats %+v: expired entries should have made room", st)
	}
}

// TestLogStateRoundTrips: a log strategy's state survives being stored.
func TestLogStateRoundTrips(t *testing.T) {
	s := memory.New(memory.Options{})
	defer s.Close()
	log, _ := strategies.Lookup("sliding_window_log")
	lim, err := log.Prepare(strategies.Limit{Requests: 3, Period: strategies.Second})
	if err != nil {
		t.Fatal(err)
	}
	o := limiter.Op{Key: "log", Strategy: log, Limit: lim, Hits: 1}
	for i := range int64(3) {
		mustApply(t, s, t0+i*100*strategies.Millisecond, o)
	}
	d := mustApply(t, s, t0+300*strategies.Millisecond, o)[0]
	if d.Allowed || d.RetryAfter != 700*strategies.Millisecond {
		t.Fatalf("fourth request: %+v, want refused for 700ms", d)
	}
}

func TestApplyValidates(t *testing.T) {
	s := memory.New(memory.Options{})
	defer s.Close()
	o := fixedOp(t, "a", 1, 1)
	if err := s.Apply(context.Background(), t0, []limiter.Op{o}, nil); err == nil {
		t.Error("Apply with a short out succeeded")
	}
	o.Strategy = nil
	if err := s.Apply(context.Background(), t0, []limiter.Op{o}, make([]strategies.Decision, 1)); err == nil {
		t.Error("Apply with a nil strategy succeeded")
	}
}

// TestBytesPerKey measures the heap held per tracked key of a fixed-size
// strategy (set ENVOY_RLS_MEMORY_KEYS=1000000 for the full measurement;
// the default is smaller to keep `make test` quick). Keys are held as
// fixed-size digests, so the figure does not depend on the key's length.
func TestBytesPerKey(t *testing.T) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("ENVOY_RLS_MEMORY_KEYS")); err == nil && v > 0 {
		n = v
	}
	perKey, keyBytes := bytesPerKey(t, n)
	t.Logf("%d keys of %.0f bytes: %.1f bytes of heap per key", n, keyBytes, perKey)
	if perKey > 128 {
		t.Errorf("%.1f bytes per key, want ≤ 128", perKey)
	}
}

// bytesPerKey stores n fresh keys of about 22 bytes and returns the heap
// held per key, key strings included, and the key strings' own length.
func bytesPerKey(t testing.TB, n int) (perKey, keyBytes float64) {
	o := fixedOp(t, "", 10, 1)
	ops := []limiter.Op{o}
	out := make([]strategies.Decision, 1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := memory.New(memory.Options{MaxKeys: 2 * n})
	defer s.Close()
	total := 0
	for i := range n {
		ops[0].Key = fmt.Sprintf("rl:domain:%012d", i)
		total += len(ops[0].Key)
		if err := s.Apply(context.Background(), t0, ops, out); err != nil {
			t.Fatal(err)
		}
	}
	ops[0].Key = ""
	runtime.GC()
	runtime.ReadMemStats(&after)
	if s.Stats().Keys != int64(n) {
		t.Fatalf("Keys = %d, want %d", s.Stats().Keys, n)
	}
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n), float64(total) / float64(n)
}

func BenchmarkApply1(b *testing.B) { benchApply(b, 1) }
func BenchmarkApply3(b *testing.B) { benchApply(b, 3) }

func benchApply(b *testing.B, nops int) {
	s := memory.New(memory.Options{})
	defer s.Close()
	const keys = 10_000
	names := make([]string, keys)
	for i := range names {
		names[i] = "bench:" + strconv.Itoa(i)
	}
	proto := fixedOp(b, "", 1_000_000, 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ops := make([]limiter.Op, nops)
		for i := range ops {
			ops[i] = proto
		}
		out := make([]strategies.Decision, nops)
		i := 0
		for pb.Next() {
			for j := range ops {
				ops[j].Key = names[(i*7+j*31)%keys]
			}
			i++
			if err := s.Apply(context.Background(), t0+int64(i), ops, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
