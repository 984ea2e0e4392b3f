package settings

import (
	"flag"
	"fmt"
	"time"
)

// Resilience configures how the service holds up when its store is slow,
// down or busy: the deadline margin, the bound on store work in flight
// and the circuit breaker.
type Resilience struct {
	// DeadlineMargin is kept from the gRPC deadline the caller sent, to
	// answer in: the store call ends that long before it.
	DeadlineMargin time.Duration
	// StoreMaxInflight bounds the store work in flight, in ops plus one
	// per KiB of keys; heavy requests beyond their share are shed first.
	StoreMaxInflight int
	// BreakerWindow, BreakerMinCalls and BreakerFailureRate: the circuit
	// opens when at least BreakerFailureRate of the store calls in the
	// last BreakerWindow failed, once there were BreakerMinCalls of them.
	BreakerWindow      time.Duration
	BreakerMinCalls    int
	BreakerFailureRate float64
	// RedisMinIdleConns is the number of Redis connections kept open and
	// idle (0: one per pipeline and one for health checks).
	RedisMinIdleConns int
}

// resilienceFlags binds the flags of r to fs.
func resilienceFlags(fs *flag.FlagSet, r *Resilience) {
	fs.DurationVar(&r.DeadlineMargin, "deadline-margin", 2*time.Millisecond, "time kept from the gRPC deadline Envoy sends, to answer in: the store call ends this long before it (at most half the time left)")
	fs.IntVar(&r.StoreMaxInflight, "store-max-inflight", 2048, "store work in flight at once, in ops plus one per KiB of keys; beyond it requests are shed with UNAVAILABLE \"overloaded\", heavy requests (over 16) first; Redis and Memcached only (the memory store answers in process and has no bound or breaker)")
	fs.DurationVar(&r.BreakerWindow, "breaker-window", 10*time.Second, "circuit breaker: the window over which the store's failure rate is measured")
	fs.IntVar(&r.BreakerMinCalls, "breaker-min-calls", 100, "circuit breaker: the fewest store calls in the window before it may open")
	fs.Float64Var(&r.BreakerFailureRate, "breaker-failure-rate", 0.5, "circuit breaker: the share of failed store calls (unavailable, not overloaded or client errors) in the window that opens it")
	fs.IntVar(&r.RedisMinIdleConns, "redis-min-idle-conns", 0, "redis: connections kept open and idle, dialled before the service reports SERVING (0: --redis-pipelines plus one)")
}

// validate reports the invalid settings of r through bad.
func (r Resilience) validate(bad func(format string, a ...any)) {
	if r.DeadlineMargin < 0 {
		bad("--deadline-margin must not be negative, got %s", r.DeadlineMargin)
	}
	if r.StoreMaxInflight <= 0 {
		bad("--store-max-inflight must be positive, got %d", r.StoreMaxInflight)
	}
	if r.BreakerWindow <= 0 {
		bad("--breaker-window must be positive, got %s", r.BreakerWindow)
	}
	if r.BreakerMinCalls <= 0 {
		bad("--breaker-min-calls must be positive, got %d", r.BreakerMinCalls)
	}
	if r.BreakerFailureRate <= 0 || r.BreakerFailureRate > 1 {
		bad("--breaker-failure-rate must be in (0, 1], got %s", fmt.Sprint(r.BreakerFailureRate))
	}
	if r.RedisMinIdleConns < 0 {
		bad("--redis-min-idle-conns must not be negative, got %d", r.RedisMinIdleConns)
	}
}
