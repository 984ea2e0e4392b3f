package strategies

import _ "embed" // go:embed of the Lua runtime

// FixedWindow counts hits in windows of Period microseconds aligned to the
// Unix epoch (a window starts at now − now mod Period) and admits a request
// when count + hits ≤ Requests. It is the algorithm of
// envoyproxy/ratelimit and agrees with it request for request for
// single-hit requests; unlike it, a denied request consumes nothing.
//
// State: A is the start of the window the count belongs to, B the count.
// A request whose now lies before A (a clock that went backwards) is
// counted in window A, so it never gains quota. The zero value is ready to
// use and safe for concurrent use.
type FixedWindow struct{}

//go:embed fixed_window.lua
var luaFixedWindow string

// LuaSource returns the Lua runtime of FixedWindow.Step (see LuaStrategy).
func (FixedWindow) LuaSource() string { return luaFixedWindow }

// Name returns "fixed_window".
func (FixedWindow) Name() string { return "fixed_window" }

// Prepare checks lim: Requests ≥ 0, 0 < Period ≤ MaxExact, Requests ≤
// MaxExact. Burst and MaxDebt are ignored.
func (f FixedWindow) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(f.Name(), lim)
	if err != nil {
		return lim, err
	}
	if err := checkExact(f.Name(), "requests", lim.Requests); err != nil {
		return lim, err
	}
	return lim, nil
}

// Step applies hits at now. Reset is the time until the current window
// ends (what envoyproxy/ratelimit reports as duration_until_reset); TTL is
// the same while the window holds hits and 0 otherwise.
func (FixedWindow) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	l, w := lim.Requests, lim.Period
	if w <= 0 {
		return prev, Decision{Exceeds: hits > 0}
	}
	eff := now
	if prev.B > 0 && prev.A > eff {
		eff = prev.A // clock went backwards: stay in the window already seen
	}
	start := eff - floorMod(eff, w)
	cur := int64(0)
	if prev.A == start {
		cur = prev.B
	}
	end := start + w
	untilEnd := end - now

	decide := func(count int64) Decision {
		d := Decision{Remaining: max(l-count, 0), Reset: untilEnd}
		if count > 0 {
			d.TTL = untilEnd
		}
		return d
	}
	prevTTL := func() int64 {
		if prev.B > 0 && prev.A+w > now {
			return prev.A + w - now
		}
		return 0
	}

	switch {
	case hits > l:
		d := decide(cur)
		d.Exceeds = true
		d.TTL = prevTTL()
		return prev, d
	case hits > 0 && cur > l-hits:
		d := decide(cur)
		d.RetryAfter = untilEnd
		d.TTL = prevTTL()
		return prev, d
	default: // consume, check, or refund never below an empty counter
		cur = max(0, cur+hits)
	}
	d := decide(cur)
	d.Allowed = true
	return State{A: start, B: cur}, d
}
