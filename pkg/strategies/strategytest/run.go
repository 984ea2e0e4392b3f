package strategytest

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Flags of the test binaries that import this package. `make test` runs
// with the defaults; a longer property run is, for example,
//
//	go test ./pkg/strategies/ -run Properties -strategytest.n=100000
//
// or the same with STRATEGYTEST_N=100000 (and STRATEGYTEST_SEED) in the
// environment. A flag set on the command line wins over the environment.
var (
	flagN    = flag.Int("strategytest.n", 0, "requests per strategy in property runs (0: the caller's default or $STRATEGYTEST_N)")
	flagSeed = flag.Int64("strategytest.seed", 0, "seed of property runs (0: the caller's default or $STRATEGYTEST_SEED)")
)

// N returns the number of requests per strategy a property run should
// make: the -strategytest.n flag, else $STRATEGYTEST_N, else def.
func N(def int) int {
	if *flagN > 0 {
		return *flagN
	}
	if v, err := strconv.Atoi(os.Getenv("STRATEGYTEST_N")); err == nil && v > 0 {
		return v
	}
	return def
}

// Seed returns the seed a property run should use: the
// -strategytest.seed flag, else $STRATEGYTEST_SEED, else def.
func Seed(def int64) int64 {
	if *flagSeed != 0 {
		return *flagSeed
	}
	if v, err := strconv.ParseInt(os.Getenv("STRATEGYTEST_SEED"), 10, 64); err == nil && v != 0 {
		return v
	}
	return def
}

// RunTables runs every registered table through apply, each as a subtest
// named after the table, on a key of its own (unique per run, so stores
// that share a backend across tests and runs do not collide). Table i runs
// shifted by i weeks, which changes no decision (T0 and every table
// period divide a week) but lets time move forward across tables as a
// store's one clock would. A table whose strategy is not registered
// fails.
func RunTables(t *testing.T, apply Applier) {
	t.Helper()
	run := rand.Uint64()
	for i, tb := range Tables() {
		t.Run(tb.Name, func(t *testing.T) {
			s, ok := strategies.Lookup(tb.Strategy)
			if !ok {
				t.Fatalf("strategy %q is not registered", tb.Strategy)
			}
			lim, err := s.Prepare(tb.Limit)
			if err != nil {
				t.Fatalf("Prepare(%+v): %v", tb.Limit, err)
			}
			key := fmt.Sprintf("strategytest:%x:table%d:%s", run, i, tb.Strategy)
			shift := int64(i) * strategies.Week
			for j, st := range tb.Steps {
				got := apply(t, key, s, lim, st.At+shift, st.Hits)
				if got != st.Want {
					t.Errorf("step %d (at %s, hits %d):\n got %+v\nwant %+v", j, Instant(st.At), st.Hits, got, st.Want)
				}
			}
		})
	}
}

// PureApplier returns an Applier that keeps states in a map and calls
// Step directly. Like a store it honours Decision.TTL: a state reads as the
// zero State from now + TTL on, so a TTL that is too short fails the
// tables. It also fails the test when Step writes to prev.Log. It is safe
// for concurrent use.
func PureApplier() Applier {
	type kept struct {
		st  strategies.State
		exp int64
	}
	var mu sync.Mutex
	m := map[string]kept{}
	return func(t testing.TB, key string, s strategies.Strategy, lim strategies.Limit, now, hits int64) strategies.Decision {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		k, ok := m[key]
		if !ok || now >= k.exp {
			k = kept{}
		}
		before := slices.Clone(k.st.Log)
		next, d := s.Step(k.st, now, lim, hits)
		if !slices.Equal(before, k.st.Log) {
			t.Errorf("%s.Step wrote to prev.Log: before %v, after %v", s.Name(), before, k.st.Log)
		}
		if d.TTL <= 0 {
			delete(m, key)
		} else {
			m[key] = kept{st: next, exp: now + d.TTL}
		}
		return d
	}
}

// Instant formats a table instant relative to T0 for failure messages,
// such as "t0+1.5s".
func Instant(at int64) string {
	d := at - T0
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d == 0:
		return "t0"
	case d%strategies.Second == 0:
		return fmt.Sprintf("t0%s%ds", sign, d/strategies.Second)
	case d%strategies.Millisecond == 0:
		return fmt.Sprintf("t0%s%dms", sign, d/strategies.Millisecond)
	}
	return fmt.Sprintf("t0%s%dµs", sign, d)
}
