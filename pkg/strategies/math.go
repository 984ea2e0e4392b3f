package strategies

import (
	"fmt"
	"math/bits"
)

// gcd returns the greatest common divisor of a and b (both > 0).
func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ceilDiv returns ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv(a, b int64) int64 {
	return (a + b - 1) / b
}

// floorDiv returns ⌊a/b⌋ for any a and b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// prepareCommon checks what every strategy requires of a limit (requests
// ≥ 0, 0 < period ≤ MaxExact, burst and max_debt ≥ 0) and fills
// RateNum/RateDen (the rate L/W reduced to lowest terms, so that a level
// scaled by RateDen drains by RateNum per microsecond exactly).
func prepareCommon(name string, lim Limit) (Limit, error) {
	if lim.Requests < 0 {
		return lim, fmt.Errorf("%w: %s: requests must not be negative, got %d", ErrInvalidLimit, name, lim.Requests)
	}
	if lim.Period <= 0 {
		return lim, fmt.Errorf("%w: %s: period must be positive, got %dµs", ErrInvalidLimit, name, lim.Period)
	}
	if err := checkExact(name, "period", lim.Period); err != nil {
		return lim, err
	}
	if lim.Burst < 0 || lim.MaxDebt < 0 {
		return lim, fmt.Errorf("%w: %s: burst and max_debt must not be negative", ErrInvalidLimit, name)
	}
	if lim.Requests > 0 {
		g := gcd(lim.Requests, lim.Period)
		lim.RateNum, lim.RateDen = lim.Requests/g, lim.Period/g
	} else {
		lim.RateNum, lim.RateDen = 0, 1
	}
	return lim, nil
}

// checkExact reports an error when v, an intermediate bound of the
// strategy's math, could exceed MaxExact.
func checkExact(name, what string, v int64) error {
	if v < 0 || v > MaxExact {
		return fmt.Errorf("%w: %s: %s is too large for exact arithmetic (limit %d); use a coarser rate", ErrInvalidLimit, name, what, MaxExact)
	}
	return nil
}

// mulExact returns a*b, or -1 when the product (of non-negative a, b)
// exceeds MaxExact. Use it in Prepare to bound capacity·RateDen and
// similar products.
func mulExact(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > MaxExact/b {
		return -1
	}
	return a * b
}

// drain returns level (≥ 0, in hits scaled by RateDen) after elapsed
// microseconds of draining rateNum per microsecond, never below zero. The
// product elapsed·rateNum is taken in 128 bits, so no elapsed overflows;
// a runtime without wide integers (Lua) gets the same result by draining
// to zero when elapsed ≥ ⌈level/rateNum⌉, where the product stays below
// level.
func drain(level, elapsed, rateNum int64) int64 {
	if level <= 0 {
		return 0
	}
	if elapsed <= 0 || rateNum <= 0 {
		return level
	}
	hi, lo := bits.Mul64(uint64(elapsed), uint64(rateNum))
	if hi != 0 || lo >= uint64(level) {
		return 0
	}
	return level - int64(lo)
}

// floorMod returns a mod b in [0, b) for any a and b > 0.
func floorMod(a, b int64) int64 {
	return a - floorDiv(a, b)*b
}
