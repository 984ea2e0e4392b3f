package redisstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// Warm opens the store's idle connections (Options.MinIdleConns per node)
// before traffic arrives: it sends that many PINGs at once to every node
// (every master in a cluster), so that each goes on a connection of its
// own, dialled now if the pool had none idle; the connections then stay
// in the pool. Without Options.ClientTime it also reads the server's
// clock for the fixed_window counters (see counter.go), so that the
// first request does not wait for it. It returns the first error, wrapping
// limiter.ErrUnavailable; the service reports SERVING only after Warm
// succeeds.
func (s *Store) Warm(ctx context.Context) error {
	select {
	case <-s.closed:
		return errClosed()
	default:
	}
	if s.cluster != nil {
		n := s.cluster.Options().MinIdleConns
		err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return pingMany(ctx, c, n)
		})
		if err != nil {
			return pingFailed(ctx, err)
		}
		return s.warmClock(ctx)
	}
	if err := pingMany(ctx, s.single, s.single.Options().MinIdleConns); err != nil {
		return pingFailed(ctx, err)
	}
	return s.warmClock(ctx)
}

// warmClock reads the server's clock unless the store uses the callers'.
func (s *Store) warmClock(ctx context.Context) error {
	if s.clientTime {
		return nil
	}
	if _, err := s.serverNow(ctx); err != nil {
		return fmt.Errorf("redisstore: reading the server's clock: %w: %w", limiter.ErrUnavailable, err)
	}
	return nil
}

// pingMany sends n PINGs to c at once and returns the first error.
func pingMany(ctx context.Context, c *redis.Client, n int) error {
	n = max(n, 1)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Ping(ctx).Err()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
