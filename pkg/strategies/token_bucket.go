package strategies

import (
	_ "embed" // go:embed of the Lua runtime
	"fmt"
)

// TokenBucket is a bucket of capacity C = Burst (default Requests) tokens
// that refills continuously at Requests per Period and starts full. A
// request of hits is admitted iff the bucket holds at least hits tokens,
// and takes them; a request of more than C hits can never be admitted
// (Exceeds).
//
// Tokens are kept exactly: the state counts the tokens missing from a full
// bucket in units of 1/RateDen token, which refill by RateNum per
// microsecond. State: A is the time the deficit was computed at, B the
// deficit (0 ≤ B ≤ C·RateDen). The zero State is a full bucket. A request
// whose now lies before A (a clock that went backwards) is treated as
// arriving at A, so it refills nothing. Refunds put tokens back, never
// above capacity. The zero value is ready to use and safe for concurrent
// use.
type TokenBucket struct{}

//go:embed token_bucket.lua
var luaTokenBucket string

// LuaSource returns the Lua runtime of TokenBucket.Step (see LuaStrategy).
func (TokenBucket) LuaSource() string { return luaTokenBucket }

// Name returns "token_bucket".
func (TokenBucket) Name() string { return "token_bucket" }

// Prepare checks lim, defaults Burst to Requests and requires
// Burst·RateDen + RateNum ≤ MaxExact. A Burst with Requests 0 is an error:
// such a bucket would never refill. MaxDebt is ignored.
func (tb TokenBucket) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(tb.Name(), lim)
	if err != nil {
		return lim, err
	}
	if lim.Requests == 0 && lim.Burst > 0 {
		return lim, fmt.Errorf("%w: %s: burst %d with requests 0 would never refill", ErrInvalidLimit, tb.Name(), lim.Burst)
	}
	if lim.Burst == 0 {
		lim.Burst = lim.Requests
	}
	v := mulExact(lim.Burst, lim.RateDen)
	if v >= 0 && v > MaxExact-lim.RateNum {
		v = -1
	}
	if err := checkExact(tb.Name(), "burst × period / gcd(requests, period)", v); err != nil {
		return lim, err
	}
	return lim, nil
}

// Step applies hits at now. RetryAfter is the exact time (rounded up to the
// microsecond) until the bucket holds hits tokens; Reset and TTL are the
// time until it is full again.
func (TokenBucket) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	c, den, num := lim.Burst, lim.RateDen, lim.RateNum
	if den <= 0 {
		return prev, Decision{Exceeds: hits > 0}
	}
	t := max(now, prev.A)
	used := drain(prev.B, t-prev.A, num)
	full := c * den

	report := func(used int64) Decision {
		d := Decision{Remaining: (full - used) / den}
		if used > 0 {
			d.Reset = t + ceilDiv(used, num) - now
			d.TTL = d.Reset
		}
		return d
	}

	switch {
	case hits > c:
		d := report(used)
		d.Exceeds = true
		return prev, d
	case hits > 0 && used > (c-hits)*den:
		d := report(used)
		d.RetryAfter = t + ceilDiv(used-(c-hits)*den, num) - now
		return prev, d
	case hits < 0:
		if hits < -c {
			used = 0
		} else {
			used = max(used+hits*den, 0)
		}
	default:
		used += hits * den
	}
	d := report(used)
	d.Allowed = true
	if used == 0 {
		return State{}, d
	}
	return State{A: t, B: used}, d
}
