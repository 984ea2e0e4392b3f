package strategies_test

import (
	"os"
	"slices"
	"strings"
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
	want := map[string]int64{"requests": 1, "period": 2, "burst": 3, "max_debt": 4, "rate_num": 5, "rate_den": 6}
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

// TestArchitectureDocListsStrategies keeps the strategy list of
// docs/architecture.md equal to the registry.
func TestArchitectureDocListsStrategies(t *testing.T) {
	raw, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- strategies:begin -->\n", "\n<!-- strategies:end -->"
	doc := string(raw)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/architecture.md has no %q … %q block", begin, end)
	}
	if got, want := doc[i+len(begin):j], strings.Join(strategies.Names(), ", "); got != want {
		t.Errorf("docs/architecture.md lists the strategies\n%s\nthe registry has\n%s", got, want)
	}
}
