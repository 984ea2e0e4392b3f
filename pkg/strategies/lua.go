package strategies

import (
	_ "embed" // go:embed of the Lua prelude
	"fmt"
	"strings"
)

// The Lua runtime of the strategies, for stores that step them inside
// Redis. A strategy offers its source through the LuaStrategy interface
// (its LuaSource method and the go:embed of its .lua file live in its own
// .go file); the sources are chunks that only make sense after
// LuaPrelude.
//
// Each chunk returns its step function, the Lua port of the strategy's
// Step, with the same integer math:
//
//	step(prev, now, lim, hits) -> next, decision
//
// A store runs LuaPrelude once, then each chunk as the body of an
// immediately called function, and keeps the step function that call
// returns (the Redis store keeps them in a table indexed by strategy id;
// see pkg/stores/redisstore/script.go).
//
// prev and next are States as tables {a=, b=, c=, log=}, where log keeps
// the entries flat as {at1, hits1, at2, hits2, ...}; step never modifies
// prev (a denied request returns prev itself). lim is a table holding the
// fields of a prepared Limit named as LimitFields lists them (requests=,
// period=, burst=, max_debt=, rate_num=, rate_den=). decision is a table
// {allowed=, exceeds= (booleans), remaining=, reset=, retry=, ttl=
// (integers)}, the fields of Decision. All numbers are integers within
// ±MaxExact, so that float64 arithmetic is exact.

var (
	//go:embed math.lua
	luaMath string
	//go:embed meter.lua
	luaMeter string
)

// LuaStrategy is a Strategy that also has a Lua runtime of its Step. The
// Redis store detects it by type assertion; a strategy without it cannot
// run on Redis, and a config that uses it with the Redis store is refused
// when it loads.
type LuaStrategy interface {
	Strategy
	// LuaSource returns the Lua chunk that returns the strategy's step
	// function; it is valid only after LuaPrelude.
	LuaSource() string
}

// LuaPrelude returns the Lua helpers every strategy chunk uses: the Lua
// runtime of math.go (floor_div, floor_mod, ceil_div, quo, drain, and the
// constructors state, zero_state and decision), of meter.go (meter_step,
// meter_report, meter_refuse, capacity_of), and limit_from_args, which
// reads a Limit from script arguments in the LimitFields layout (see
// LuaLimitReader). It defines only locals.
func LuaPrelude() string { return luaMath + "\n" + luaMeter + "\n" + LuaLimitReader() }

// LuaLimitReader returns the Lua source of LIMIT_ARGS, the number of
// script arguments a Limit takes (len(LimitFields())), and of
// limit_from_args(argv, i), which returns the lim table step functions
// take from argv[i] … argv[i+LIMIT_ARGS−1], in the order EncodeLimit
// writes them. It is part of LuaPrelude.
func LuaLimitReader() string {
	var b strings.Builder
	fields := LimitFields()
	fmt.Fprintf(&b, "-- generated from the strategy registry (LuaLimitReader in lua.go)\nlocal LIMIT_ARGS = %d\n", len(fields))
	b.WriteString("local function limit_from_args(argv, i)\n  return {\n")
	for j, f := range fields {
		fmt.Fprintf(&b, "    %s = tonumber(argv[i + %d]),\n", f, j)
	}
	b.WriteString("  }\nend\n")
	return b.String()
}
