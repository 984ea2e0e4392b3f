package strategies_test

import (
	"slices"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

// TestRegistryHasTables fails for a registered strategy without step
// tables in strategytest, and for a table of an unregistered one. (A
// strategy without properties fails TestProperties.)
func TestRegistryHasTables(t *testing.T) {
	byStrategy := map[string]int{}
	for _, tb := range strategytest.Tables() {
		byStrategy[tb.Strategy]++
		if _, ok := strategies.Lookup(tb.Strategy); !ok {
			t.Errorf("table %q is of strategy %q, which is not registered", tb.Name, tb.Strategy)
		}
	}
	for _, name := range strategies.Names() {
		if byStrategy[name] == 0 {
			t.Errorf("strategy %q has no step tables: add pkg/strategies/strategytest/tables_%s.go", name, name)
		}
	}
}

func TestRegistryNames(t *testing.T) {
	names := strategies.Names()
	if len(names) == 0 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("Names() = %v, want sorted distinct names", names)
	}
	if _, ok := strategies.Lookup(strategies.Default); !ok {
		t.Fatalf("the default strategy %q is not registered", strategies.Default)
	}
	for _, n := range names {
		s, ok := strategies.Lookup(n)
		if !ok || s.Name() != n {
			t.Errorf("Lookup(%q) = %v, %v", n, s, ok)
		}
	}
	if _, ok := strategies.Lookup("no_such_strategy"); ok {
		t.Error("Lookup of an unknown name succeeded")
	}
}

// TestRegistryParams checks the parameter declarations against Prepare: a
// strategy that reads a parameter keeps a value set for it (or rejects
// it), one that does not read it gives the same prepared limit with or
// without it.
func TestRegistryParams(t *testing.T) {
	base := strategies.Limit{Requests: 10, Period: strategies.Second}
	for _, n := range strategies.Names() {
		s, _ := strategies.Lookup(n)
		want, err := s.Prepare(base)
		if err != nil {
			t.Fatalf("%s: Prepare(%+v): %v", n, base, err)
		}
		for _, p := range strategies.Params() {
			lim := base
			p.Set(&lim, 7)
			got, err := s.Prepare(lim)
			if strategies.Reads(n, p.Name) {
				if err == nil && p.Get(got) != 7 {
					t.Errorf("%s reads %s but Prepare dropped it: %+v", n, p.Name, got)
				}
				continue
			}
			p.Set(&got, p.Get(want)) // the ignored value may stay in the Limit
			if err != nil || got != want {
				t.Errorf("%s does not declare %s, but Prepare with it = %+v, %v; without it %+v", n, p.Name, got, err, want)
			}
		}
	}
	if got := strategies.Users("burst"); !slices.Equal(got, []string{"gcra", "token_bucket", "token_bucket_with_debt"}) {
		t.Errorf("Users(burst) = %v", got)
	}
}

func TestEncodeLimit(t *testing.T) {
	lim := strategies.Limit{Requests: 1, Period: 2, Burst: 3, MaxDebt: 4, RateNum: 5, RateDen: 6}
	fields := strategies.LimitFields()
	if len(fields) != strategies.LimitArgs() {
		t.Fatalf("LimitFields() has %d names, LimitArgs() = %d", len(fields), strategies.LimitArgs())
	}
	dst := make([]int64, strategies.LimitArgs()+1)
	if n := strategies.EncodeLimit(dst, lim); n != strategies.LimitArgs() {
		t.Fatalf("EncodeLimit wrote %d values, want %d", n, strategies.LimitArgs())
	}
	want := map[string]int64{"requests": 1, "period": 2, "rate_num": 5, "rate_den": 6}
	for _, p := range strategies.Params() {
		want[p.Name] = p.Get(lim)
	}
	for i, f := range fields {
		if w, ok := want[f]; !ok || dst[i] != w {
			t.Errorf("argument %d (%s) = %d, want %d", i, f, dst[i], w)
		}
	}
}

// TestEveryStrategyHasLua keeps the Redis store able to run every
// registered strategy; a strategy without a Lua runtime would still load
// with the memory and memcached stores, and be refused with Redis.
func TestEveryStrategyHasLua(t *testing.T) {
	for _, n := range strategies.Names() {
		s, _ := strategies.Lookup(n)
		ls, ok := s.(strategies.LuaStrategy)
		if !ok || ls.LuaSource() == "" {
			t.Errorf("strategy %q has no Lua runtime (LuaSource)", n)
		}
	}
}
