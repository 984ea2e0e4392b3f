package strategies

import _ "embed" // go:embed of the strategies' Lua sources

// The Lua runtime of the strategies, for stores that step them inside
// Redis. Each strategy offers its source through the LuaStrategy
// interface; the sources are chunks that only make sense after LuaPrelude.
//
// A script built from them is LuaPrelude followed by one chunk per
// strategy, each wrapped as an immediately called function:
//
//	local step_fixed_window = (function()
//	  <FixedWindow{}.LuaSource()>
//	end)()
//
// Each chunk returns its step function, the Lua port of the strategy's
// Step, with the same integer math:
//
//	step(prev, now, lim, hits) -> next, decision
//
// prev and next are States as tables {a=, b=, c=, log=}, where log keeps
// the entries flat as {at1, hits1, at2, hits2, ...}; step never modifies
// prev (a denied request returns prev itself). lim is a table {requests=,
// period=, burst=, max_debt=, rate_num=, rate_den=} holding the fields of a
// prepared Limit. decision is a table {allowed=, exceeds= (booleans),
// remaining=, reset=, retry=, ttl= (integers)}, the fields of Decision.
// All numbers are integers within ±MaxExact, so that float64 arithmetic is
// exact.

var (
	//go:embed math.lua
	luaPrelude string
	//go:embed fixed_window.lua
	luaFixedWindow string
	//go:embed sliding_window_counter.lua
	luaSlidingWindowCounter string
	//go:embed sliding_window_log.lua
	luaSlidingWindowLog string
	//go:embed token_bucket.lua
	luaTokenBucket string
	//go:embed token_bucket_with_debt.lua
	luaTokenBucketWithDebt string
	//go:embed leaky_bucket.lua
	luaLeakyBucket string
	//go:embed leaky_bucket_with_queue.lua
	luaLeakyBucketWithQueue string
	//go:embed gcra.lua
	luaGCRA string
)

// LuaStrategy is a Strategy that also has a Lua runtime of its Step. The
// Redis store detects it by type assertion.
type LuaStrategy interface {
	Strategy
	// LuaSource returns the Lua chunk that returns the strategy's step
	// function; it is valid only after LuaPrelude (see the package's Lua
	// notes in lua.go).
	LuaSource() string
}

// LuaPrelude returns the Lua helpers every strategy chunk uses: the Lua
// runtime of math.go (floor_div, floor_mod, ceil_div, quo, drain) and of
// the meter of leaky_bucket, gcra and token_bucket_with_debt
// (meter_step, meter_report), and the constructors state, zero_state and
// decision. It defines only locals.
func LuaPrelude() string { return luaPrelude }

var (
	_ LuaStrategy = FixedWindow{}
	_ LuaStrategy = SlidingWindowCounter{}
	_ LuaStrategy = SlidingWindowLog{}
	_ LuaStrategy = TokenBucket{}
	_ LuaStrategy = TokenBucketWithDebt{}
	_ LuaStrategy = LeakyBucket{}
	_ LuaStrategy = LeakyBucketWithQueue{}
	_ LuaStrategy = GCRA{}
)

// LuaSource returns the Lua runtime of FixedWindow.Step.
func (FixedWindow) LuaSource() string { return luaFixedWindow }

// LuaSource returns the Lua runtime of SlidingWindowCounter.Step.
func (SlidingWindowCounter) LuaSource() string { return luaSlidingWindowCounter }

// LuaSource returns the Lua runtime of SlidingWindowLog.Step.
func (SlidingWindowLog) LuaSource() string { return luaSlidingWindowLog }

// LuaSource returns the Lua runtime of TokenBucket.Step.
func (TokenBucket) LuaSource() string { return luaTokenBucket }

// LuaSource returns the Lua runtime of TokenBucketWithDebt.Step.
func (TokenBucketWithDebt) LuaSource() string { return luaTokenBucketWithDebt }

// LuaSource returns the Lua runtime of LeakyBucket.Step.
func (LeakyBucket) LuaSource() string { return luaLeakyBucket }

// LuaSource returns the Lua runtime of LeakyBucketWithQueue.Step.
func (LeakyBucketWithQueue) LuaSource() string { return luaLeakyBucketWithQueue }

// LuaSource returns the Lua runtime of GCRA.Step.
func (GCRA) LuaSource() string { return luaGCRA }
