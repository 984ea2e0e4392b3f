package strategies

import (
	_ "embed" // go:embed of the Lua runtime
	"fmt"
)

// MaxLogLimit is the largest Requests sliding_window_log accepts. The log
// holds at most one entry per distinct admission instant, so it has at
// most Requests entries and each step costs O(Requests) time and space;
// the bound keeps one key's state below about 160 KiB.
const MaxLogLimit = 10000

// SlidingWindowLog keeps an exact log of the hits admitted within the last
// Period and admits a request of hits at now iff the hits admitted in
// (now − Period, now] plus hits ≤ Requests: an entry admitted at t counts
// until t + Period.
//
// State: Log holds the entries (At, Hits) still counting, oldest first,
// with distinct At (hits admitted at the same instant merge). A request
// whose now lies before the newest entry (a clock that went backwards) is
// treated as arriving at the newest entry's time, so it never gains
// quota. Refunds remove hits from the newest entries first. Step never
// writes to prev.Log[0:len(prev.Log)]: it reslices and appends, and copies
// the log when it must change an existing entry. The zero value is ready
// to use and safe for concurrent use.
type SlidingWindowLog struct{}

//go:embed sliding_window_log.lua
var luaSlidingWindowLog string

// LuaSource returns the Lua runtime of SlidingWindowLog.Step (see LuaStrategy).
func (SlidingWindowLog) LuaSource() string { return luaSlidingWindowLog }

// Name returns "sliding_window_log".
func (SlidingWindowLog) Name() string { return "sliding_window_log" }

// Prepare checks lim and requires Requests ≤ MaxLogLimit. Burst and
// MaxDebt are ignored.
func (s SlidingWindowLog) Prepare(lim Limit) (Limit, error) {
	lim, err := prepareCommon(s.Name(), lim)
	if err != nil {
		return lim, err
	}
	if lim.Requests > MaxLogLimit {
		return lim, fmt.Errorf("%w: %s: requests %d above the log bound %d; use sliding_window_counter", ErrInvalidLimit, s.Name(), lim.Requests, MaxLogLimit)
	}
	return lim, nil
}

// Step applies hits at now. RetryAfter is the exact time until enough
// entries expire; Reset and TTL are the time until the newest entry
// expires.
func (SlidingWindowLog) Step(prev State, now int64, lim Limit, hits int64) (State, Decision) {
	l, w := lim.Requests, lim.Period
	if w <= 0 {
		return prev, Decision{Exceeds: hits > 0}
	}
	eff := now
	if n := len(prev.Log); n > 0 && prev.Log[n-1].At > eff {
		eff = prev.Log[n-1].At
	}
	// Drop the entries that no longer count at eff.
	i := 0
	for i < len(prev.Log) && prev.Log[i].At+w <= eff {
		i++
	}
	live := prev.Log[i:]
	var sum int64
	for _, e := range live {
		sum += e.Hits
	}
	fresh := func(log []Entry) int64 {
		if len(log) == 0 {
			return 0
		}
		return log[len(log)-1].At + w - now
	}

	switch {
	case hits > l:
		f := fresh(prev.Log)
		return prev, Decision{Exceeds: true, Remaining: max(l-sum, 0), Reset: fresh(live), TTL: max(f, 0)}
	case hits > 0 && sum > l-hits:
		// Wait until the oldest entries holding at least sum+hits−l expire.
		need := sum + hits - l
		at := eff
		for _, e := range live {
			need -= e.Hits
			if need <= 0 {
				at = e.At + w
				break
			}
		}
		f := fresh(prev.Log)
		return prev, Decision{Remaining: max(l-sum, 0), Reset: fresh(live), TTL: max(f, 0), RetryAfter: at - now}
	case hits > 0:
		if n := len(live); n > 0 && live[n-1].At == eff {
			c := make([]Entry, n, n+1)
			copy(c, live)
			c[n-1].Hits += hits
			live = c
		} else {
			live = append(live, Entry{At: eff, Hits: hits})
		}
		sum += hits
	case hits < 0:
		live, sum = slwRefund(live, sum, hits)
	}
	if len(live) == 0 {
		live = nil
	}
	f := fresh(live)
	return State{Log: live}, Decision{Allowed: true, Remaining: max(l-sum, 0), Reset: f, TTL: f}
}

// slwRefund removes −hits (hits < 0) from the newest entries of live,
// whose hits add up to sum, and returns the new log and sum. It reslices
// when whole entries go and copies when it must shrink one.
func slwRefund(live []Entry, sum, hits int64) ([]Entry, int64) {
	if hits <= -sum {
		return nil, 0
	}
	left := -hits // 0 < left < sum
	n := len(live)
	for n > 0 && live[n-1].Hits <= left {
		left -= live[n-1].Hits
		n--
	}
	if left == 0 {
		return live[:n], sum + hits
	}
	c := make([]Entry, n)
	copy(c, live[:n])
	c[n-1].Hits -= left
	return c, sum + hits
}
