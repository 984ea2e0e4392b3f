package limiter

import (
	"context"
	"errors"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Op is one strategy step a Store must apply atomically on one key.
type Op struct {
	// Key is the collision-free store key the Limiter builds: its
	// KeyPrefix, the limit's throttle uid (descriptors.RateLimit.UID,
	// which names the strategy) and the client's identifier, each
	// component encoded by descriptors.AppendComponent.
	Key string
	// Strategy is the algorithm to step; Limit comes from its Prepare.
	Strategy strategies.Strategy
	Limit    strategies.Limit
	// Hits > 0 consumes, 0 checks, < 0 refunds.
	Hits int64
	// Independent ops (shadow-mode rules) do not veto the request: their
	// denial does not stop the other ops from consuming.
	Independent bool
}

// Store holds the state of every key and applies ops to it.
//
// Apply applies ops at now (microseconds since the Unix epoch) and writes
// one Decision per op into out, which has len(ops). Each op is atomic on
// its key; ops on the same key within one call apply in order. Across the
// ops of one call the all-or-nothing rule holds: when any op that is not
// Independent and has Hits > 0 is denied, no op with Hits > 0 consumes
// anything, and the decisions of the others report their state as a check
// (Hits 0) would. Refunds (Hits < 0) always apply. A Store sends all ops
// of one call in as few round trips as its backend allows.
//
// An error means no decision could be made. It wraps one of the errors
// below, so that callers branch once: ErrUnavailable when the backend
// could not be reached in time or reported itself down (the only kind a
// circuit breaker counts), ErrOverloaded when envoy-rls itself shed the
// call before it reached the backend, ErrInvalidRequest when the request
// cannot be decided as asked. Any other error is internal (a malformed
// state under one key, a bug). Implementations are safe for concurrent use.
type Store interface {
	Apply(ctx context.Context, now int64, ops []Op, out []strategies.Decision) error
	Close() error
}

// ErrUnavailable is wrapped by Store errors caused by an unreachable,
// failing or slow backend.
var ErrUnavailable = errors.New("store unavailable")

// ErrOverloaded is wrapped by errors of calls that envoy-rls shed itself
// (its queue to the store was full, or the caller's deadline passed while
// the call waited for its turn). It is not the store's fault and never
// counts against a circuit breaker.
var ErrOverloaded = errors.New("overloaded")

// ErrInvalidRequest is wrapped by errors of requests that cannot be
// decided as asked, such as a limit override whose window overflows.
// The service answers INVALID_ARGUMENT; it never reaches the failure mode.
var ErrInvalidRequest = errors.New("invalid request")

// Pinger is implemented by stores that can report whether their backend
// answers; the service reports NOT_SERVING on health while it does not.
type Pinger interface {
	Ping(ctx context.Context) error
}
