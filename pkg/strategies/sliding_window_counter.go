package strategies

import _ "embed" // go:embed of the Lua runtime

// SlidingWindowCounter approximates a sliding window with two fixed
// windows aligned to the Unix epoch: the count of the previous window is
// weighted by the part of it that the sliding window still covers. With
// elapsed = now − (start of the current window), a request of hits is
// admitted iff
//
//	prev·(Period − elapsed)/Period + cur + hits ≤ Requests,
//
// compared exactly in integers as prev·(Period − elapsed) + (cur + hits)·Period
// ≤ Requests·Period (Prepare requires Requests·Period ≤ MaxExact, for
// example at most 104 249 requests per day).
//
// State: A is the start of the current window, B its count (cur) and C the
// count of the window before it (prev). A request whose now lies before A
// (a clock that went backwards) is treated as arriving at A, where the
// previous window weighs most, so it never gains quota. Refunds come out
// of the current window's count only. The zero value is ready to use and
// safe for concurrent use.
type SlidingWindowCounter struct{}

//go:embed sliding_window_counter.lua
var luaSlidingWindowCounter string

// LuaSource returns the Lua runtime of SlidingWindowCounter.Step (see LuaStrategy).
func (SlidingWindowCounter) LuaSource() string { return luaSlidingWindowCounter }

// Name returns "sliding_window_counter".
func (SlidingWindowCounter) Name() string { return "sliding_window_counter" }

// Prepare checks lim and requires Requests·Period ≤ MaxExact so that the
// weighted comparison is exact. Burst and MaxDebt are ignored.
func (s SlidingWindowCounter) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(s.Name(), lim)
	if err != nil {
		return lim, err
	}
	if err := checkExact(s.Name(), "requests × period", mulExact(lim.Requests, lim.Period)); err != nil {
		return lim, err
	}
	return lim, nil
}

// Step applies hits at now. RetryAfter is the exact time until the same
// request would pass, possibly in a later window; Reset and TTL are the
// time until neither window's count has any weight left.
func (SlidingWindowCounter) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	l, w := lim.Requests, lim.Period
	if w <= 0 {
		return prev, Decision{Exceeds: hits > 0}
	}
	eff := now
	if (prev.B > 0 || prev.C > 0) && prev.A > eff {
		eff = prev.A
	}
	start := eff - floorMod(eff, w)
	var cur, old int64
	switch start {
	case prev.A:
		cur, old = prev.B, prev.C
	case prev.A + w:
		old = prev.B
	}
	elapsed := eff - start

	// Reset/TTL of a state that has cur in the window at start and old in
	// the one before.
	fresh := func(cur, old int64) int64 {
		switch {
		case cur > 0:
			return start + 2*w - now
		case old > 0:
			return start + w - now
		}
		return 0
	}
	// remaining: the largest n with old·(w−elapsed) + (cur+n)·w ≤ l·w.
	remaining := func(cur int64) int64 {
		return max(l-cur-ceilDiv(old*(w-elapsed), w), 0)
	}

	switch {
	case hits > l:
		return prev, Decision{Exceeds: true, Remaining: remaining(cur), Reset: fresh(cur, old), TTL: fresh(cur, old)}
	case hits > 0 && !swcAdmits(old, cur, hits, l, w, elapsed):
		at := swcRetryAt(old, cur, hits, l, w, start, elapsed)
		f := fresh(cur, old)
		return prev, Decision{Remaining: remaining(cur), Reset: f, TTL: f, RetryAfter: at - now}
	default: // consume, check, or refund never below an empty counter
		cur = max(0, cur+hits)
	}
	f := fresh(cur, old)
	next := State{A: start, B: cur, C: old}
	if f == 0 {
		next = State{}
	}
	return next, Decision{Allowed: true, Remaining: remaining(cur), Reset: f, TTL: f}
}

// swcAdmits reports whether old·(w−elapsed) + (cur+hits)·w ≤ l·w, for
// 0 ≤ hits ≤ l, without leaving [0, l·w].
func swcAdmits(old, cur, hits, l, w, elapsed int64) bool {
	room := l - hits - cur
	if room < 0 {
		return false
	}
	return old*(w-elapsed) <= room*w
}

// swcRetryAt returns the earliest instant at which a request of hits
// (0 < hits ≤ l) is admitted when nothing else arrives, given cur hits in
// the window [start, start+w), old hits in the one before, and that it is
// not admitted at start+elapsed.
func swcRetryAt(old, cur, hits, l, w, start, elapsed int64) int64 {
	x := l - hits // the weighted count must fall to x
	if cur <= x && old > 0 {
		// Still in this window: old·(w−e) ≤ (x−cur)·w ⇔ e ≥ w − ⌊(x−cur)·w/old⌋.
		e := w - (x-cur)*w/old
		if e < w {
			return start + max(e, elapsed)
		}
	}
	if cur == 0 {
		return start + w
	}
	// In the next window cur weighs as the previous one:
	// cur·(w−e) ≤ x·w ⇔ e ≥ w − ⌊x·w/cur⌋ (e = w is the window after).
	return start + w + (w - x*w/cur)
}
