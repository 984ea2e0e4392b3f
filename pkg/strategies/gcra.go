package strategies

import _ "embed" // go:embed of the Lua runtime

// GCRA is the "gcra" strategy, the generic cell rate algorithm: requests
// are paced one emission interval T = Period/Requests apart, with a
// tolerance τ = (Burst − 1)·T for bursts. A request of h hits at now is
// admitted iff max(TAT, now) + h·T − now ≤ τ + T, where TAT is the
// theoretical arrival time of the next request; admitting it moves TAT to
// max(TAT, now) + h·T. Burst defaults to 1 (strict pacing). Unlike
// Traffik's GCRA, hits are honoured (a request of h hits costs h·T) and
// RetryAfter accounts for the tolerance: it is the exact time, rounded up
// to the microsecond, until max(TAT, now) + h·T − now ≤ τ + T holds.
// Requests of more than Burst hits are refused with Exceeds.
//
// State: TAT is kept exactly as the backlog TAT − B in hits scaled by
// RateDen (a backlog of one hit is RateDen and lasts T; it drains RateNum
// per microsecond), so that A = (TAT − B)·RateNum and B is the time in
// microseconds the backlog was computed at. The zero State is a key with
// TAT in the past, and such a key is stored as the zero State. The zero
// GCRA is ready to use and safe for concurrent use.
type GCRA struct{}

//go:embed gcra.lua
var luaGCRA string

// LuaSource returns the Lua runtime of GCRA.Step (see LuaStrategy).
func (GCRA) LuaSource() string { return luaGCRA }

// Name returns "gcra".
func (GCRA) Name() string { return "gcra" }

// Prepare validates lim, defaults Burst to 1 and fills RateNum and RateDen.
// A Burst with Requests 0 is an error; Burst scaled by RateDen must stay
// within MaxExact.
func (g GCRA) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(g.Name(), lim)
	if err != nil {
		return lim, err
	}
	if err := requireRate(g.Name(), lim, "burst", lim.Burst); err != nil {
		return lim, err
	}
	if lim.Burst == 0 {
		lim.Burst = 1
	}
	return lim, checkMeter(g.Name(), "burst", lim.Burst, lim)
}

// Step applies hits at now; see Strategy.
func (GCRA) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	return newMeter(lim, lim.Burst).step(prev, now, hits)
}
