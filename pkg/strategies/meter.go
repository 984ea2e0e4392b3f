package strategies

import "fmt"

// The meter: one bucket under three strategies (leaky_bucket, gcra and
// token_bucket_with_debt), which differ only in its capacity. Its Lua
// runtime is meter.lua.

// meter is the exact arithmetic shared by leaky_bucket, gcra and
// token_bucket_with_debt, which are one bucket with different capacities:
// a level that admitted hits raise and that drains at the limit's rate.
// The level is kept in hits scaled by lim.RateDen, so it drains by
// lim.RateNum per microsecond with no rounding. State.A holds the level
// and State.B the time it was computed at.
type meter struct {
	// capacity is the largest level, in hits, that admission may reach.
	capacity int64
	// num and den are the prepared limit's RateNum and RateDen.
	num, den int64
}

// newMeter returns the meter of capacity c under lim; its capacity is 0
// when the limit admits nothing at all (Requests 0: the level would never
// drain).
func newMeter(lim Limit, c int64) meter {
	if lim.RateNum == 0 {
		c = 0
	}
	return meter{capacity: c, num: lim.RateNum, den: max(lim.RateDen, 1)}
}

// checkMeter reports an error when capacity scaled by lim.RateDen, plus
// the drain of one microsecond, could leave the exact range. what names
// the configured parameters that make up capacity.
func checkMeter(name, what string, capacity int64, lim Limit) error {
	v := mulExact(capacity, lim.RateDen)
	if v >= 0 && v > MaxExact-lim.RateNum {
		v = -1
	}
	return checkExact(name, what+" × period / gcd(requests, period)", v)
}

// levelAt returns the level of s drained up to t = max(now, s.B), and t.
// A clock that went backwards (now < s.B) drains nothing: the request is
// treated as arriving at s.B, so it gains no quota.
func levelAt(s State, now, rateNum int64) (level, t int64) {
	t = max(now, s.B)
	return drain(s.A, t-s.B, rateNum), t
}

// step applies hits at now to prev.
func (m meter) step(prev State, now, hits int64) (State, Decision) {
	den := m.den
	level, t := levelAt(prev, now, m.num)
	skew := t - now
	if d, refused := m.refuse(level, skew, hits); refused {
		return prev, d
	}
	switch {
	case hits > 0:
		level += hits * den
	case hits < 0:
		if hits <= -ceilDiv(level, den) {
			level = 0
		} else {
			level += hits * den
		}
	}
	d := m.report(level, skew)
	d.Allowed = true
	if level == 0 {
		return State{}, d
	}
	return State{A: level, B: t}, d
}

// refuse returns the decision for hits the meter, at level (scaled by
// den), cannot admit now — more than its capacity, or more than is free —
// and reports false when they fit (checks and refunds always fit).
func (m meter) refuse(level, skew, hits int64) (Decision, bool) {
	if hits > m.capacity {
		d := m.report(level, skew)
		d.Exceeds = true
		return d, true
	}
	if hits > 0 {
		need := hits * m.den
		if free := m.capacity*m.den - level; need > free {
			d := m.report(level, skew)
			d.RetryAfter = skew + ceilDiv(need-free, m.num)
			return d, true
		}
	}
	return Decision{}, false
}

// report returns the decision fields that describe level at now+skew:
// Remaining, Reset and TTL.
func (m meter) report(level, skew int64) Decision {
	d := Decision{Remaining: (m.capacity*m.den - level) / m.den}
	if level > 0 {
		d.Reset = skew + ceilDiv(level, m.num)
		d.TTL = d.Reset
	}
	return d
}

// requireRate reports an error when a limit of Requests 0 (which never
// drains) is given a capacity of its own: such a bucket would fill once
// and then deny forever.
func requireRate(name string, lim Limit, what string, v int64) error {
	if lim.Requests == 0 && v > 0 {
		return fmt.Errorf("%w: %s: %s %d with requests 0 would never drain", ErrInvalidLimit, name, what, v)
	}
	return nil
}
