package strategies

import _ "embed" // go:embed of the Lua runtime

// TokenBucketWithDebt is the "token_bucket_with_debt" strategy: a token
// bucket of capacity Burst (default Requests) refilled at Requests per
// Period whose tokens may fall to −MaxDebt. A request of h hits is admitted
// iff tokens − h ≥ −MaxDebt; the debt is then paid back by the refill
// before the bucket is full again. With MaxDebt 0 (the default) it decides
// exactly as token_bucket. Requests of more than Burst + MaxDebt hits are
// refused with Exceeds and RetryAfter 0 (Traffik's TokenBucket answers them
// with a wait that can never be met).
//
// Remaining counts every single-hit request still admissible now, debt
// included: ⌊tokens⌋ + MaxDebt, never negative.
//
// State: A is the deficit Burst − tokens, in hits scaled by RateDen (one
// token is RateDen, refilled at RateNum per microsecond, so it is exact in
// integers); B is the time in microseconds it was computed at. The zero
// State is a full bucket, and a full bucket is stored as the zero State.
// The zero TokenBucketWithDebt is ready to use and safe for concurrent use.
type TokenBucketWithDebt struct{}

//go:embed token_bucket_with_debt.lua
var luaTokenBucketWithDebt string

// LuaSource returns the Lua runtime of TokenBucketWithDebt.Step (see LuaStrategy).
func (TokenBucketWithDebt) LuaSource() string { return luaTokenBucketWithDebt }

// Name returns "token_bucket_with_debt".
func (TokenBucketWithDebt) Name() string { return "token_bucket_with_debt" }

// Prepare validates lim, defaults Burst to Requests and fills RateNum and
// RateDen. A Burst or MaxDebt with Requests 0 is an error; (Burst +
// MaxDebt) scaled by RateDen must stay within MaxExact.
func (tb TokenBucketWithDebt) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(tb.Name(), lim)
	if err != nil {
		return lim, err
	}
	if err := requireRate(tb.Name(), lim, "burst + max_debt", lim.Burst+lim.MaxDebt); err != nil {
		return lim, err
	}
	if lim.Burst == 0 {
		lim.Burst = lim.Requests
	}
	if lim.Burst > MaxExact || lim.MaxDebt > MaxExact {
		return lim, checkExact(tb.Name(), "burst + max_debt", -1)
	}
	return lim, checkMeter(tb.Name(), "(burst + max_debt)", lim.Burst+lim.MaxDebt, lim)
}

// Step applies hits at now; see Strategy.
func (TokenBucketWithDebt) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	return newMeter(lim, lim.Burst+lim.MaxDebt).step(prev, now, hits)
}
