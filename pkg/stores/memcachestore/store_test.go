package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/storetest"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

// testTimeout is generous: the tests run with -race on shared CPUs.
const testTimeout = 5 * time.Second

func newStore(t testing.TB, addrs []string, opts Options) *Store {
	t.Helper()
	opts.Servers = addrs
	if opts.Timeout == 0 {
		opts.Timeout = testTimeout
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return s
}

func TestConformanceOneServer(t *testing.T) {
	addrs := []string{testservers.Memcached(t).Addr}
	storetest.Run(t, func(t *testing.T) limiter.Store { return newStore(t, addrs, Options{}) })
}

func TestConformanceTwoServers(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	storetest.Run(t, func(t *testing.T) limiter.Store { return newStore(t, addrs, Options{}) })
}

// mustOp returns a prepared op of the named strategy.
func mustOp(t testing.TB, key, name string, lim strategies.Limit, hits int64) limiter.Op {
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

func applyOK(t testing.TB, s *Store, now int64, ops ...limiter.Op) []strategies.Decision {
	t.Helper()
	out := make([]strategies.Decision, len(ops))
	if err := s.Apply(context.Background(), now, ops, out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out
}

func testPrefix() string { return fmt.Sprintf("mctest:%x:", rand.Uint64()) }

// TestReplicasShareAPool is three Store instances (three replicas of the
// service) on a pool of two servers, with 64 goroutines racing on one
// fixed_window key: exactly the limit is admitted.
func TestReplicasShareAPool(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	const (
		limit      = 300
		goroutines = 64
		calls      = 10
	)
	stores := make([]*Store, 3)
	for i := range stores {
		stores[i] = newStore(t, addrs, Options{})
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	now := strategytest.T0
	o := mustOp(t, testPrefix()+"hot", "fixed_window", strategies.Limit{Requests: limit, Period: strategies.Hour}, 1)
	var admitted, denied atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%len(stores)]
			out := make([]strategies.Decision, 1)
			for range calls {
				if err := s.Apply(context.Background(), now, []limiter.Op{o}, out); err != nil {
					errs <- err
					return
				}
				if out[0].Allowed {
					admitted.Add(1)
				} else {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	if a, d := admitted.Load(), denied.Load(); a != limit || a+d != goroutines*calls {
		t.Fatalf("admitted %d, denied %d of %d; want exactly %d admitted", a, d, goroutines*calls, limit)
	}
}

// TestRaceVetoRefunds makes two requests race: each consumes on a key of
// its own and on a shared key with room for one. Exactly one of them is
// admitted, and the loser consumes nothing on its own key.
func TestRaceVetoRefunds(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	const rounds = 30
	lim := strategies.Limit{Requests: 1, Period: strategies.Hour}
	now := strategytest.T0
	for r := range rounds {
		p := testPrefix()
		shared := mustOp(t, p+"shared", "fixed_window", lim, 1)
		own := []limiter.Op{
			mustOp(t, p+"own0", "token_bucket", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1),
			mustOp(t, p+"own1", "token_bucket", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1),
		}
		var wg sync.WaitGroup
		outs := make([][]strategies.Decision, 2)
		errs := make([]error, 2)
		for i := range 2 {
			s := newStore(t, addrs, Options{MaxRetries: 1000})
			defer s.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i] = make([]strategies.Decision, 2)
				// The own key first, so that it is written before the
				// shared key's race is lost.
				errs[i] = s.Apply(context.Background(), now, []limiter.Op{own[i], shared}, outs[i])
			}()
		}
		wg.Wait()
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
			// A refused request reports its other ops as checks.
			if outs[i][1].Allowed {
				won++
				if want := (strategies.Decision{Allowed: true, Remaining: 4}); outs[i][0].Remaining != 4 || !outs[i][0].Allowed || rem != 4 {
					t.Errorf("round %d: winner %d: own op %+v, Remaining %d after; want %+v and 4", r, i, outs[i][0], rem, want)
				}
			} else if rem != 5 || outs[i][0].Remaining != 5 {
				t.Errorf("round %d: loser %d: own op %+v, Remaining %d after; want 5 (nothing consumed)", r, i, outs[i][0], rem)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d requests admitted on a key with room for one", r, won)
		}
	}
}

func TestUnsafeKeys(t *testing.T) {
	addrs := []string{testservers.Memcached(t).Addr}
	s := newStore(t, addrs, Options{})
	defer s.Close()
	p := testPrefix()
	keys := []string{
		p + strings.Repeat("k", 1000),
		p + strings.Repeat("k", 999) + "j",
		p + "with spaces and\nnewlines\r\n",
		p + "with\x00nul",
		p + "with_nul",
		p + "with spaces and_newlines__",
		p + "ünïcode",
	}
	lim := strategies.Limit{Requests: 10, Period: strategies.Hour}
	now := strategytest.T0
	for i, k := range keys {
		// Key i gets i+1 hits; if two keys collided the counts would mix.
		got := applyOK(t, s, now, mustOp(t, k, "fixed_window", lim, int64(i+1)))[0]
		if !got.Allowed || got.Remaining != 10-int64(i+1) {
			t.Errorf("key %d (%.40q…): %+v, want allowed with Remaining %d", i, k, got, 10-(i+1))
		}
	}
	for i, k := range keys {
		got := applyOK(t, s, now, mustOp(t, k, "fixed_window", lim, 0))[0]
		if got.Remaining != 10-int64(i+1) {
			t.Errorf("key %d (%.40q…) reads Remaining %d, want %d", i, k, got.Remaining, 10-(i+1))
		}
	}
}

// TestLongTTL keeps a state whose TTL is longer than 30 days, which
// memcached only accepts as an absolute time.
func TestLongTTL(t *testing.T) {
	srv := testservers.Memcached(t)
	s := newStore(t, []string{srv.Addr}, Options{})
	defer s.Close()
	// The absolute expiration is computed from the now of the call, so it
	// must be close to the server's clock here.
	now := time.Now().UnixMicro()
	lim := strategies.Limit{Requests: 1, Period: 90 * strategies.Day}
	key := testPrefix() + "long"
	o := mustOp(t, key, "token_bucket", lim, 1)
	d := applyOK(t, s, now, o)[0]
	if !d.Allowed || d.TTL <= 30*strategies.Day {
		t.Fatalf("first request: %+v, want allowed with a TTL above 30 days", d)
	}
	mc := memcache.New(srv.Addr)
	defer mc.Close()
	if _, err := mc.Get(memcacheKey(key)); err != nil {
		t.Fatalf("state with a %s TTL not kept: %v", time.Duration(d.TTL)*time.Microsecond, err)
	}
	if d := applyOK(t, s, now+strategies.Second, o)[0]; d.Allowed {
		t.Fatalf("second request admitted: the state was lost: %+v", d)
	}
}

// TestZeroTTLDeletes checks that a state that need not be kept (a refund
// back to a fresh key) is removed from memcached.
func TestZeroTTLDeletes(t *testing.T) {
	srv := testservers.Memcached(t)
	s := newStore(t, []string{srv.Addr}, Options{})
	defer s.Close()
	key := testPrefix() + "zero"
	o := mustOp(t, key, "token_bucket", strategies.Limit{Requests: 2, Period: strategies.Second}, 1)
	now := strategytest.T0
	applyOK(t, s, now, o)
	mc := memcache.New(srv.Addr)
	defer mc.Close()
	if _, err := mc.Get(memcacheKey(key)); err != nil {
		t.Fatalf("state not stored: %v", err)
	}
	// Two seconds later the bucket is full again: a check needs no write,
	// a refund steps to a fresh state whose TTL is 0.
	o.Hits = -1
	if d := applyOK(t, s, now+2*strategies.Second, o)[0]; d.TTL != 0 {
		t.Fatalf("refund on a full bucket: %+v, want TTL 0", d)
	}
	if _, err := mc.Get(memcacheKey(key)); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("state with TTL 0 still stored (err %v)", err)
	}
}

func TestMalformedValue(t *testing.T) {
	srv := testservers.Memcached(t)
	s := newStore(t, []string{srv.Addr}, Options{})
	defer s.Close()
	key := testPrefix() + "bad value"
	mc := memcache.New(srv.Addr)
	defer mc.Close()
	if err := mc.Set(&memcache.Item{Key: memcacheKey(key), Value: []byte("not a state")}); err != nil {
		t.Fatal(err)
	}
	out := make([]strategies.Decision, 1)
	o := mustOp(t, key, "gcra", strategies.Limit{Requests: 1, Period: strategies.Second}, 1)
	err := s.Apply(context.Background(), strategytest.T0, []limiter.Op{o}, out)
	if !errors.Is(err, ErrMalformedState) || !strings.Contains(err.Error(), "bad value") {
		t.Fatalf("Apply on a malformed value = %v, want ErrMalformedState naming the key", err)
	}
}

// TestServerDownAndBack stops the server under a Store, expects
// ErrUnavailable within the timeout, restarts the server on the same port
// and expects the same Store to work again.
func TestServerDownAndBack(t *testing.T) {
	srv := testservers.Memcached(t)
	const timeout = 200 * time.Millisecond
	s := newStore(t, []string{srv.Addr}, Options{Timeout: timeout})
	defer s.Close()
	o := mustOp(t, testPrefix()+"a", "fixed_window", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1)
	now := strategytest.T0
	applyOK(t, s, now, o)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with the server up: %v", err)
	}

	srv.Stop()
	out := make([]strategies.Decision, 1)
	start := time.Now()
	err := s.Apply(context.Background(), now, []limiter.Op{o}, out)
	if !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Apply with the server down = %v, want an error wrapping limiter.ErrUnavailable", err)
	}
	if took := time.Since(start); took > 10*timeout {
		t.Errorf("Apply with the server down took %s, timeout %s", took, timeout)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Ping with the server down = %v, want ErrUnavailable", err)
	}

	srv.Start()
	// The restarted server is empty: the key starts fresh.
	if d := applyOK(t, s, now, o)[0]; !d.Allowed || d.Remaining != 4 {
		t.Fatalf("Apply after the restart: %+v, want allowed with Remaining 4", d)
	}
}

// TestHungServer pauses the server so that connections hang, and expects
// Apply to give up with ErrUnavailable within about its timeout, then to
// work again once the server resumes.
func TestHungServer(t *testing.T) {
	srv := testservers.Memcached(t)
	const timeout = 200 * time.Millisecond
	s := newStore(t, []string{srv.Addr}, Options{Timeout: timeout})
	defer s.Close()
	o := mustOp(t, testPrefix()+"a", "fixed_window", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1)
	now := strategytest.T0
	applyOK(t, s, now, o)

	srv.Pause()
	waitHung(t, srv.Addr)
	out := make([]strategies.Decision, 1)
	start := time.Now()
	err := s.Apply(context.Background(), now, []limiter.Op{o}, out)
	took := time.Since(start)
	srv.Resume()
	if !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Apply on a hung server = %v, want an error wrapping limiter.ErrUnavailable", err)
	}
	if took > 10*timeout {
		t.Errorf("Apply on a hung server took %s, timeout %s", took, timeout)
	}
	if d := applyOK(t, s, now, o)[0]; !d.Allowed || d.Remaining > 3 {
		t.Fatalf("Apply after resuming: %+v, want allowed with Remaining ≤ 3", d)
	}
}

// waitHung waits until the server at addr stops answering: SIGSTOP takes
// effect asynchronously, and a worker thread of memcached still running
// may answer one more request (which a one-round-trip Apply then gets).
func waitHung(t *testing.T, addr string) {
	t.Helper()
	mc := memcache.New(addr)
	mc.Timeout = 20 * time.Millisecond
	defer mc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := mc.Ping(); err != nil {
			return
		}
	}
	t.Fatalf("memcached on %s still answers after SIGSTOP", addr)
}

// TestNewWithServersDown checks that New succeeds without servers to talk
// to, and that Apply then fails with ErrUnavailable.
func TestNewWithServersDown(t *testing.T) {
	srv := testservers.Memcached(t)
	srv.Stop()
	s, err := New(Options{Servers: []string{srv.Addr, "memcached.invalid:11211"}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with the servers down: %v", err)
	}
	defer s.Close()
	out := make([]strategies.Decision, 1)
	o := mustOp(t, "k", "fixed_window", strategies.Limit{Requests: 5, Period: strategies.Hour}, 1)
	if err := s.Apply(context.Background(), strategytest.T0, []limiter.Op{o}, out); !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Apply = %v, want ErrUnavailable", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Servers: []string{"no-port"}},
		{Servers: []string{":11211"}},
		{Servers: []string{"127.0.0.1:11211"}, Timeout: -1},
		{Servers: []string{"127.0.0.1:11211"}, MaxRetries: -1},
	} {
		if s, err := New(opts); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}

func TestCloseLeaksNoGoroutines(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	before := runtime.NumGoroutine()
	s := newStore(t, addrs, Options{})
	p := testPrefix()
	lim := strategies.Limit{Requests: 5, Period: strategies.Hour}
	for i := range 20 {
		applyOK(t, s, strategytest.T0,
			mustOp(t, fmt.Sprintf("%sa%d", p, i), "fixed_window", lim, 1),
			mustOp(t, fmt.Sprintf("%sb%d", p, i), "gcra", lim, 1))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before the Store", n, before)
	}
}

// TestRoundTripsPerCall checks that a call costs one round trip per phase
// on one server, whatever its number of keys: one for fixed_window
// counters (incr, creating a missing counter in the same command), two for
// compare-and-swap keys (the reads, then the writes), and one more when a
// refused fixed_window hit is given back.
func TestRoundTripsPerCall(t *testing.T) {
	s := newStore(t, []string{testservers.Memcached(t).Addr}, Options{})
	defer s.Close()
	p := testPrefix()
	lim := strategies.Limit{Requests: 2, Period: strategies.Hour}
	now := strategytest.T0
	fw := func(k string, hits int64) limiter.Op { return mustOp(t, p+k, "fixed_window", lim, hits) }
	tb := func(k string) limiter.Op { return mustOp(t, p+k, "token_bucket", lim, 1) }
	for _, c := range []struct {
		name  string
		ops   []limiter.Op
		trips uint64
	}{
		{"three new counters", []limiter.Op{fw("a", 1), fw("b", 1), fw("c", 1)}, 1},
		{"three counters again", []limiter.Op{fw("a", 1), fw("b", 1), fw("c", 1)}, 1},
		{"a refused hit given back", []limiter.Op{fw("a", 1), fw("b", 1)}, 2},
		{"three compare-and-swap keys", []limiter.Op{tb("x"), tb("y"), tb("z")}, 2},
		{"counters and compare-and-swap keys", []limiter.Op{fw("d", 1), tb("x"), tb("w")}, 2},
	} {
		before := s.roundTrips()
		applyOK(t, s, now, c.ops...)
		if got := s.roundTrips() - before; got != c.trips {
			t.Errorf("%s: %d round trips, want %d", c.name, got, c.trips)
		}
	}
}

// TestVetoedRefundsRace runs calls that a full key vetoes while they also
// refund a compare-and-swap key, against hits on that key from another
// Store (another replica), so that the refunds' writes lose races and the
// vetoed calls are decided again: every refund is applied exactly once.
func TestVetoedRefundsRace(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	refunder := newStore(t, addrs, Options{MaxRetries: 1000})
	defer refunder.Close()
	hitter := newStore(t, addrs, Options{MaxRetries: 1000})
	defer hitter.Close()
	p := testPrefix()
	now := strategytest.T0
	lim := strategies.Limit{Requests: 1000, Period: 1000 * strategies.Hour}
	full := mustOp(t, p+"full", "token_bucket", strategies.Limit{Requests: 1, Period: strategies.Hour}, 1)
	applyOK(t, refunder, now, full)
	shared := mustOp(t, p+"shared", "token_bucket", lim, 500)
	applyOK(t, refunder, now, shared)

	const calls = 100
	refund := shared
	refund.Hits = -1
	hit := shared
	hit.Hits = 1
	var wg sync.WaitGroup
	errs := make(chan error, 2*calls)
	var hits atomic.Int64
	wg.Go(func() {
		out := make([]strategies.Decision, 2)
		for range calls {
			if err := refunder.Apply(context.Background(), now, []limiter.Op{full, refund}, out); err != nil {
				errs <- err
				return
			}
			if out[0].Allowed || !out[1].Allowed {
				errs <- fmt.Errorf("vetoed call with a refund decided %+v, want the full key refused and the refund allowed", out)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			out := make([]strategies.Decision, 1)
			for range calls / 4 {
				if err := hitter.Apply(context.Background(), now, []limiter.Op{hit}, out); err != nil {
					errs <- err
					return
				}
				if out[0].Allowed {
					hits.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := shared
	check.Hits = 0
	if got, want := applyOK(t, hitter, now, check)[0].Remaining, 500+calls-hits.Load(); got != want {
		t.Fatalf("Remaining %d after %d refunds and %d hits from 500, want %d", got, calls, hits.Load(), want)
	}
}

// TestLateVetoUnstages makes two calls race for a compare-and-swap key
// with room for one, each also refunding and consuming on a
// compare-and-swap key of its own, written in the same phase: the loser,
// vetoed once it reads the shared key again, gives back what it consumed
// on its own key (limiter.Unstage) and keeps its refund.
func TestLateVetoUnstages(t *testing.T) {
	addrs := testservers.MemcachedAddrs(testservers.MemcachedPool(t, 2))
	const rounds = 20
	now := strategytest.T0
	own := strategies.Limit{Requests: 100, Period: 1000 * strategies.Hour}
	for r := range rounds {
		p := testPrefix()
		shared := mustOp(t, p+"shared", "token_bucket", strategies.Limit{Requests: 1, Period: strategies.Hour}, 1)
		stores := make([]*Store, 2)
		calls := make([][]limiter.Op, 2)
		for i := range stores {
			stores[i] = newStore(t, addrs, Options{MaxRetries: 1000})
			defer stores[i].Close()
			key := fmt.Sprintf("%sown%d", p, i)
			applyOK(t, stores[i], now, mustOp(t, key, "token_bucket", own, 50))
			calls[i] = []limiter.Op{mustOp(t, key, "token_bucket", own, -1), mustOp(t, key, "token_bucket", own, 3), shared}
		}
		outs := make([][]strategies.Decision, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range stores {
			outs[i] = make([]strategies.Decision, 3)
			wg.Go(func() { errs[i] = stores[i].Apply(context.Background(), now, calls[i], outs[i]) })
		}
		wg.Wait()
		won := 0
		for i := range stores {
			if errs[i] != nil {
				t.Fatalf("round %d: Apply %d: %v", r, i, errs[i])
			}
			check := calls[i][1]
			check.Hits = 0
			rem := applyOK(t, stores[i], now, check)[0].Remaining
			want := int64(50 + 1) // the refund stays
			if outs[i][2].Allowed {
				won++
				want -= 3
			}
			if rem != want {
				t.Errorf("round %d: call %d (shared admitted: %v) leaves Remaining %d on its own key, want %d", r, i, outs[i][2].Allowed, rem, want)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d calls admitted on a key with room for one", r, won)
		}
	}
}
