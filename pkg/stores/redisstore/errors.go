package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// unavailable wraps err, an error of a call to Redis bounded by ctx (whose
// limit is timeout), with limiter.ErrUnavailable and a short description
// of what went wrong.
func unavailable(ctx context.Context, timeout time.Duration, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", describe(ctx, timeout, err), limiter.ErrUnavailable, err)
}

// describe names the failure behind err for operators.
func describe(ctx context.Context, timeout time.Duration, err error) string {
	msg := err.Error()
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		if ctx.Err() != nil {
			return fmt.Sprintf("no answer within the %v timeout", timeout)
		}
		return "network timeout"
	case errors.Is(err, context.Canceled):
		return "canceled by the caller"
	case errors.Is(err, redis.ErrClosed):
		return "client closed"
	case strings.HasPrefix(msg, "CLUSTERDOWN"):
		return "cluster is down"
	case strings.HasPrefix(msg, "MOVED"), strings.HasPrefix(msg, "ASK"), strings.HasPrefix(msg, "TRYAGAIN"):
		return "cluster slots are moving"
	case strings.HasPrefix(msg, "LOADING"):
		return "server is loading its data"
	case strings.HasPrefix(msg, "MASTERDOWN"), strings.HasPrefix(msg, "READONLY"):
		return "master unavailable"
	case strings.HasPrefix(msg, "NOAUTH"), strings.HasPrefix(msg, "WRONGPASS"):
		return "authentication failed"
	case strings.HasPrefix(msg, "OOM"):
		return "server out of memory"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case strings.Contains(msg, "redis: all sentinels"), strings.Contains(msg, "master is down"):
		return "no master known to the sentinels"
	case errors.As(err, &nerr):
		return "network error"
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return "redis error"
	}
	return "request failed"
}
