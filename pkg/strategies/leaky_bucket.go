package strategies

import _ "embed" // go:embed of the Lua runtime

// LeakyBucket is the "leaky_bucket" strategy, the leaky bucket as a meter:
// every admitted hit pours one unit into a bucket of capacity Requests that
// leaks Requests per Period, continuously. A request of h hits is admitted
// iff level + h ≤ Requests. Unlike Traffik's LeakyBucket, a first request
// larger than the bucket is refused (Exceeds) like any other. Burst and
// MaxDebt are ignored.
//
// State: A is the level in hits scaled by RateDen (a level of one hit is
// RateDen, and it drains RateNum per microsecond, so it is exact in
// integers); B is the time in microseconds the level was computed at. The
// zero State is an empty bucket, and an empty bucket is stored as the zero
// State, so that deleting a key whose TTL has passed changes nothing. A
// request whose now lies before B (a clock that went backwards) is treated
// as arriving at B, so it gains nothing. The zero LeakyBucket is ready to
// use and safe for concurrent use.
type LeakyBucket struct{}

//go:embed leaky_bucket.lua
var luaLeakyBucket string

// LuaSource returns the Lua runtime of LeakyBucket.Step (see LuaStrategy).
func (LeakyBucket) LuaSource() string { return luaLeakyBucket }

// Name returns "leaky_bucket".
func (LeakyBucket) Name() string { return "leaky_bucket" }

// Prepare validates lim and fills RateNum and RateDen; the bucket's
// capacity scaled by RateDen must stay within MaxExact.
func (b LeakyBucket) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(b.Name(), lim)
	if err != nil {
		return lim, err
	}
	return lim, checkMeter(b.Name(), "requests", lim.Requests, lim)
}

// Step applies hits at now; see Strategy.
func (LeakyBucket) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	return newMeter(lim, lim.Requests).step(prev, now, hits)
}
