package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// errStoreTimeout is the cause of the contexts that Options.Timeout
// bounds (context.WithTimeoutCause), so that a call cut short by the
// store's own timeout can be told from one whose caller gave up.
var errStoreTimeout = errors.New("redisstore: store timeout")

// unavailable classifies err, the error of a call to Redis bounded by ctx
// (whose own limit, when it has cause errStoreTimeout, is timeout), into
// the limiter's error contract, with a short description for operators:
//   - the caller's own cancellation or deadline (ctx done by its parent):
//     wraps the context's error only; it says nothing about Redis;
//   - a wait for a pooled connection that timed out: the time went in
//     envoy-rls's own queue, so it wraps limiter.ErrOverloaded;
//   - no answer within timeout, a network or connection error, a closed
//     client, and the replies by which Redis says it cannot serve now
//     (CLUSTERDOWN, LOADING, MASTERDOWN, TRYAGAIN, READONLY, BUSY, OOM,
//     MOVED/ASK left over, authentication): wraps limiter.ErrUnavailable;
//   - any other reply (NOSCRIPT left after reloads, WRONGTYPE or a script
//     error on a malformed state, NOPERM): an internal error, wrapping
//     neither, so that a bad key does not open a circuit breaker.
//
// The name is kept from when every error wrapped limiter.ErrUnavailable.
func unavailable(ctx context.Context, timeout time.Duration, err error) error {
	what, kind := classify(ctx, timeout, err)
	if kind == nil {
		return fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return fmt.Errorf("redisstore: %s: %w: %w", what, kind, err)
}

// callerGone reports whether ctx was ended by its caller (its parent's
// cancellation or deadline) rather than by the store's own timeout.
func callerGone(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(context.Cause(ctx), errStoreTimeout)
}

// classify names the failure behind err and the limiter error it wraps
// (nil for an internal error and for the caller's own cancellation).
func classify(ctx context.Context, timeout time.Duration, err error) (string, error) {
	msg := err.Error()
	var nerr net.Error
	var rerr redis.Error
	isRedis := errors.As(err, &rerr)
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.As(err, &nerr) && nerr.Timeout()
	switch {
	case timedOut && callerGone(ctx):
		if errors.Is(ctx.Err(), context.Canceled) {
			return "canceled by the caller", nil
		}
		return "the caller's deadline passed", nil
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return "no free connection in the pool", limiter.ErrOverloaded
	case timedOut && ctx.Err() != nil:
		return fmt.Sprintf("no answer within the %v timeout", timeout), limiter.ErrUnavailable
	case timedOut:
		return "network timeout", limiter.ErrUnavailable
	case errors.Is(err, redis.ErrClosed):
		return "client closed", limiter.ErrUnavailable
	case isRedis:
		return classifyReply(msg)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", limiter.ErrUnavailable
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "connection lost", limiter.ErrUnavailable
	case strings.Contains(msg, "redis: all sentinels"), strings.Contains(msg, "master is down"):
		return "no master known to the sentinels", limiter.ErrUnavailable
	case errors.As(err, &nerr):
		return "network error", limiter.ErrUnavailable
	}
	return "request failed", limiter.ErrUnavailable
}

// classifyReply classifies an error reply of Redis by its prefix.
func classifyReply(msg string) (string, error) {
	for _, r := range replies {
		if strings.HasPrefix(msg, r.prefix) {
			return r.what, r.kind
		}
	}
	return "redis error", nil
}

// replies are the error replies by which Redis says it cannot serve now;
// any other reply is an internal error.
var replies = [...]struct {
	prefix, what string
	kind         error
}{
	{"CLUSTERDOWN", "cluster is down", limiter.ErrUnavailable},
	{"MOVED", "cluster slots are moving", limiter.ErrUnavailable},
	{"ASK", "cluster slots are moving", limiter.ErrUnavailable},
	{"TRYAGAIN", "cluster slots are moving", limiter.ErrUnavailable},
	{"LOADING", "server is loading its data", limiter.ErrUnavailable},
	{"MASTERDOWN", "master unavailable", limiter.ErrUnavailable},
	{"READONLY", "master unavailable", limiter.ErrUnavailable},
	{"BUSY", "server busy running a script", limiter.ErrUnavailable},
	{"OOM", "server out of memory", limiter.ErrUnavailable},
	{"NOAUTH", "authentication failed", limiter.ErrUnavailable},
	{"WRONGPASS", "authentication failed", limiter.ErrUnavailable},
	{"NOSCRIPT", "script missing after reloading it", nil},
	{"NOPERM", "command refused by the ACL", nil},
	{"WRONGTYPE", "a key holds a value of another type", nil},
}

// queued returns the error of a batched call whose Options.Timeout passed
// while it still waited in the store's queue for a pipeline: the time went
// in envoy-rls, not in Redis.
func (s *Store) queued() error {
	return fmt.Errorf("redisstore: still queued for a pipeline after the %v timeout: %w", s.timeout, limiter.ErrOverloaded)
}

// pingFailed returns the error of a Ping bounded by ctx: whatever the
// cause, Redis did not answer the ping, so it wraps limiter.ErrUnavailable.
func pingFailed(ctx context.Context, err error) error {
	what, _ := classify(ctx, pingTimeout, err)
	return fmt.Errorf("redisstore: ping: %s: %w: %w", what, limiter.ErrUnavailable, err)
}
