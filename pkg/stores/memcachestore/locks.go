package memcachestore

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// lockStripes is the number of local locks of a Store. Keys are hashed
// onto them; two keys that share a stripe only wait for each other within
// one process.
const lockStripes = 1024

// keyLocks serializes, within one Store, the Apply calls that touch the
// same keys, so that compare-and-swap races happen only between processes
// (replicas of the service), not between the goroutines of one. Without
// them a hot key's concurrent requests in one process would mostly lose
// their races, spending round trips and retries. Each stripe is a channel
// of capacity one, so that waiting for it honours the call's context.
type keyLocks struct {
	seed    maphash.Seed
	stripes [lockStripes]chan struct{}
}

func newKeyLocks() *keyLocks {
	l := &keyLocks{seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

// stripesOf appends the sorted, distinct stripes of the compare-and-swap
// keys among keys to dst (fixed_window counters take no local lock).
func (l *keyLocks) stripesOf(dst []uint32, keys []keyState) []uint32 {
	for i := range keys {
		if !keys[i].fast {
			dst = append(dst, uint32(maphash.String(l.seed, keys[i].mkey)%lockStripes))
		}
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// lock takes stripes in ascending order (so that two calls never wait for
// each other in a cycle). On a done ctx it releases what it took and
// returns an error wrapping limiter.ErrOverloaded (the wait was in
// envoy-rls) or, when the caller gave up, the caller's context error.
func (l *keyLocks) lock(ctx context.Context, stripes []uint32) error {
	for i, s := range stripes {
		select {
		case l.stripes[s] <- struct{}{}:
		case <-ctx.Done():
			l.unlock(stripes[:i])
			if callerGone(ctx) {
				return ctxError(ctx, "waiting for a local key lock")
			}
			return fmt.Errorf("memcachestore: waiting for a local key lock: %w: %w", limiter.ErrOverloaded, ctx.Err())
		}
	}
	return nil
}

// unlock releases stripes taken by lock.
func (l *keyLocks) unlock(stripes []uint32) {
	for _, s := range stripes {
		<-l.stripes[s]
	}
}
