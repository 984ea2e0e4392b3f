package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bradfitz/gomemcache/memcache"
)

// errNotSent is the error of a cmd not sent because the call's context
// had ended; the applier turns it into ctxError.
var errNotSent = errors.New("memcachestore: not sent")

// exec runs cmds (one round trip each, in parallel) and fills in their
// answers. A cmd is not sent once ctx is done.
func (s *Store) exec(ctx context.Context, cmds []cmd) {
	_ = parallel(len(cmds), func(i int) error {
		s.exec1(ctx, &cmds[i])
		return nil
	})
}

func (s *Store) exec1(ctx context.Context, c *cmd) {
	c.res, c.err = resOK, nil
	if ctx.Err() != nil {
		c.err = errNotSent
		return
	}
	var err error
	switch c.op {
	case cmdGet:
		var it *memcache.Item
		it, err = s.mc.Get(c.key)
		if err == nil {
			c.val, c.casID = it.Value, it.CasID
		}
	case cmdIncr:
		for {
			c.num, err = s.mc.Increment(c.key, c.delta)
			if !errors.Is(err, memcache.ErrCacheMiss) {
				break
			}
			if ctx.Err() != nil {
				c.err = errNotSent
				return
			}
			err = s.mc.Add(&memcache.Item{Key: c.key, Value: fmt.Appendf(nil, "%d", c.delta), Expiration: c.exp})
			if err == nil {
				c.num = c.delta
				break
			}
			if !errors.Is(err, memcache.ErrNotStored) {
				break
			}
		}
	case cmdDecr:
		c.num, err = s.mc.Decrement(c.key, c.delta)
	case cmdAdd:
		err = s.mc.Add(&memcache.Item{Key: c.key, Value: c.value, Expiration: c.exp})
	case cmdCAS:
		err = s.mc.CompareAndSwap(&memcache.Item{Key: c.key, Value: c.value, Expiration: c.exp, CasID: c.cas})
	case cmdDelete:
		err = s.mc.CompareAndSwap(&memcache.Item{Key: c.key, Value: []byte{0}, Expiration: -1, CasID: c.cas})
	}
	switch {
	case err == nil:
	case errors.Is(err, memcache.ErrCacheMiss) && (c.op == cmdGet || c.op == cmdDecr):
		c.res = resMiss
	case errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss):
		c.res = resConflict
	case strings.HasPrefix(err.Error(), "memcache: client error"):
		c.err = fmt.Errorf("%w: %w", errClientError, err)
	default:
		c.err = err
	}
}
