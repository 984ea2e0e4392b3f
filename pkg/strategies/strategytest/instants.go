package strategytest

import "github.com/envoy-rls/envoy-rls/pkg/strategies"

// T0 is the origin of the tables' named instants: 2023-08-31T00:00:00Z in
// microseconds since the Unix epoch, a multiple of a week, so windows of
// any period that divides a week start at T0.
const T0 = 2800 * strategies.Week

// Time units in microseconds, for writing instants such as T0 + 100*ms.
const (
	us = int64(1)
	ms = strategies.Millisecond
	s  = strategies.Second
)

// mkAllow is the decision of an admitted request.
func mkAllow(remaining, reset, ttl int64) strategies.Decision {
	return strategies.Decision{Allowed: true, Remaining: remaining, Reset: reset, TTL: ttl}
}

// mkDeny is the decision of a refused request that passes after retry.
func mkDeny(remaining, reset, retry, ttl int64) strategies.Decision {
	return strategies.Decision{Remaining: remaining, Reset: reset, RetryAfter: retry, TTL: ttl}
}

// mkExceed is the decision of a request larger than the capacity.
func mkExceed(remaining, reset, ttl int64) strategies.Decision {
	return strategies.Decision{Exceeds: true, Remaining: remaining, Reset: reset, TTL: ttl}
}
