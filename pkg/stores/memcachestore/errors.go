package memcachestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// errStoreTimeout is the cause of the context that Options.Timeout bounds
// (context.WithTimeoutCause), so that an Apply cut short by the store's
// own timeout can be told from one whose caller gave up.
var errStoreTimeout = errors.New("memcachestore: store timeout")

// callerGone reports whether ctx was ended by its caller (its parent's
// cancellation or deadline) rather than by the store's own timeout.
func callerGone(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(context.Cause(ctx), errStoreTimeout)
}

// ctxError is the error of a call whose context ended before step: when
// the store's own timeout ended it, the store did not answer in time
// (limiter.ErrUnavailable); when the caller gave up, it wraps only the
// caller's context error, since it says nothing about the servers.
func ctxError(ctx context.Context, step string) error {
	if callerGone(ctx) {
		return fmt.Errorf("memcachestore: %s: the caller gave up: %w", step, ctx.Err())
	}
	return fmt.Errorf("memcachestore: %s: no answer within the timeout: %w: %w", step, limiter.ErrUnavailable, ctx.Err())
}

// classifyClientError returns the limiter error that err, an error of a
// command (see cmd.err), wraps: limiter.ErrUnavailable for network
// errors, timeouts, a server that reports an error or cannot be dialled;
// nil (an internal error) for a key memcached would refuse as malformed,
// which no retry or other server would change.
func classifyClientError(err error) error {
	if errors.Is(err, errMalformedKey) {
		return nil
	}
	return limiter.ErrUnavailable
}
