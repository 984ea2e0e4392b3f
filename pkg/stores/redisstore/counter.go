package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// The fixed_window counters.
//
// A fixed_window key is not stored as a MessagePack state under its own
// name but as a plain integer counter per window, under
// counterKey(key, window start), which expires a little after its window
// ends. Both paths agree on it:
//
//   - An Apply call whose ops are all fixed_window, on distinct keys and
//     with no refund, runs no script (the native path): each op with
//     0 < hits ≤ requests is an INCRBY of its hits and a PEXPIRE, any
//     other a GET, all in the pipeline of the batcher. The counter before
//     the INCRBY is the state the strategy's Step sees, so the decision is
//     exactly Step's, computed in Go. The hits of a refused op, and of
//     every admitted op of a call that an op vetoes, are given back with a
//     second INCRBY of minus the hits before Apply returns.
//   - Any other call runs the script, whose fixed_window ops read and
//     write the same counters (the strategy id of fixed_window marks them;
//     the window start comes as an argument).
//
// Between an INCRBY and the INCRBY that gives a refused request's hits
// back, other requests on the key may see a count above the limit and be
// refused too: never admitted beyond the limit. The same holds for the
// hits taken back when another op of the call vetoes it.
//
// The clock. The window is part of the key, so it is chosen in envoy-rls
// before the call is sent, from the call's now: with Options.ClientTime
// the now passed to Apply; otherwise an estimate of the Redis server's
// clock (serverClock): the server's TIME, read at most every
// clockRefresh, plus the time elapsed since on this process's monotonic
// clock. Replicas then agree on the window up to half a round trip and
// the drift of their monotonic clocks over clockRefresh (well under a
// millisecond on one network), without a TIME per call, and a call on a
// fixed_window key carries that now into the script too, so that both
// paths count in the same window. Calls without a fixed_window op keep
// reading TIME inside the script.

// counterSep separates a store key from the window start in a counter key.
// Store keys are a prefix followed by components that each start with a
// digit (descriptors.AppendComponent), so a key followed by "|w" and
// digits never equals another store key or another key's counter.
const counterSep = "|w"

// counterKey returns the Redis key of the fixed_window counter of key for
// the window that starts at start (microseconds since the Unix epoch).
func counterKey(key string, start int64) string {
	var nb [20]byte
	num := strconv.AppendInt(nb[:0], start, 10)
	b := make([]byte, 0, len(key)+len(counterSep)+len(num))
	b = append(b, key...)
	b = append(b, counterSep...)
	b = append(b, num...)
	return string(b)
}

// counterSlackMs is the least time (milliseconds) a counter outlives its
// window: an INCRBY that gives hits back within the store's timeout then
// always finds the counter it gave them to (never recreating an expired
// one), and the clock-going-back search (locate) finds recent windows.
// dispatch.lua holds the same value.
const counterSlackMs = 1000

// isFixedWindow reports whether s is the fixed_window strategy, whose ops
// use counters.
func isFixedWindow(s strategies.Strategy) bool {
	switch s.(type) {
	case strategies.FixedWindow, *strategies.FixedWindow:
		return true
	}
	return false
}

// clockRefresh is how often the estimate of the server's clock reads the
// server's TIME again.
const clockRefresh = time.Second

// clockSample is one reading of the server's TIME: server microseconds
// at the local monotonic instant local (the middle of the round trip).
type clockSample struct {
	server int64
	local  time.Time
}

// serverClock estimates the Redis server's clock for the fixed_window
// windows when Options.ClientTime is false. It is safe for concurrent
// use.
type serverClock struct {
	sample  atomic.Pointer[clockSample]
	reading sync.Mutex   // held by the caller reading TIME
	last    atomic.Int64 // the latest time returned: now never goes back
}

// serverNow returns the estimate of the server's clock in microseconds,
// never less than an earlier answer. The first call reads the server's
// TIME (the calls that arrive meanwhile wait for it); later ones read it
// again when the sample is older than clockRefresh, one caller at a
// time, the others using the older sample meanwhile. When TIME fails
// with a sample at hand the older sample stays in use.
func (s *Store) serverNow(ctx context.Context) (int64, error) {
	c := &s.clock
	smp := c.sample.Load()
	switch {
	case smp == nil:
		c.reading.Lock()
		smp = c.sample.Load()
		if smp == nil {
			var err error
			if smp, err = s.readTime(ctx); err != nil {
				c.reading.Unlock()
				return 0, err
			}
			c.sample.Store(smp)
		}
		c.reading.Unlock()
	case time.Since(smp.local) > clockRefresh && c.reading.TryLock():
		if fresh, err := s.readTime(ctx); err == nil {
			c.sample.Store(fresh)
			smp = fresh
		}
		c.reading.Unlock()
	}
	now := smp.server + time.Since(smp.local).Microseconds()
	for {
		last := c.last.Load()
		if now <= last {
			return last, nil
		}
		if c.last.CompareAndSwap(last, now) {
			return now, nil
		}
	}
}

// readTime reads the server's TIME (in a cluster, of the node go-redis
// picks for a keyless command).
func (s *Store) readTime(ctx context.Context) (*clockSample, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
	defer cancel()
	cmd := redis.NewTimeCmd(ctx, "time")
	t0 := time.Now()
	if err := s.client.Process(ctx, cmd); err != nil {
		return nil, unavailable(ctx, s.timeout, err)
	}
	t1 := time.Now()
	return &clockSample{server: cmd.Val().UnixMicro(), local: t0.Add(t1.Sub(t0) / 2)}, nil
}

// counters is the form of an Apply call that the store sends: its ops
// with every fixed_window op's key replaced by its counter's, the window
// start of each op (0 for other strategies), and the call's now (−1: the
// script reads the server's TIME).
// A counters is reused through Store.forms.
type counters struct {
	ops    []limiter.Op
	starts []int64
	now    int64
	fixed  bool // some op is fixed_window
	native bool // every op is fixed_window, on distinct keys, none refunds

	own  []limiter.Op // the memory of ops when they are a copy
	sbuf []int64      // the memory of starts

	// keyOf and staged are the native path's arguments of limiter.Stage.
	keyOf  []int
	staged []limiter.Staged
}

// release returns cs to s.forms, keeping no key strings alive.
func (s *Store) release(cs *counters) {
	clear(cs.own)
	cs.ops, cs.own = nil, cs.own[:0]
	s.forms.Put(cs)
}

// prepare returns the form of a call of ops at now that the store sends,
// to give back with release once the call is decided. It reads the server's clock (serverNow) when the call has a
// fixed_window op and the store does not use the callers' time, and looks
// for later windows (locate) when the caller's clock went back.
func (s *Store) prepare(ctx context.Context, now int64, ops []limiter.Op) (*counters, error) {
	for i := range ops {
		if ops[i].Strategy == nil {
			return nil, fmt.Errorf("redisstore: op %d (key %q) has no strategy", i, ops[i].Key)
		}
	}
	cs := s.forms.Get().(*counters)
	cs.ops, cs.starts, cs.now, cs.fixed, cs.native = ops, nil, now, false, true
	for i := range ops {
		if isFixedWindow(ops[i].Strategy) {
			cs.fixed = true
		} else {
			cs.native = false
		}
	}
	if !s.clientTime {
		cs.now = -1
	}
	if !cs.fixed {
		return cs, nil
	}
	if !s.clientTime {
		t, err := s.serverNow(ctx)
		if err != nil {
			s.release(cs)
			return nil, err
		}
		cs.now = t
	}
	cs.own = append(cs.own[:0], ops...)
	cs.ops = cs.own
	cs.sbuf = append(cs.sbuf[:0], make([]int64, len(ops))...)
	cs.starts = cs.sbuf
	for i := range cs.ops {
		op := &cs.ops[i]
		if !isFixedWindow(op.Strategy) {
			continue
		}
		if op.Hits < 0 {
			cs.native = false
		}
		if op.Limit.Period <= 0 {
			s.release(cs)
			return nil, fmt.Errorf("redisstore: op %d (key %q): fixed_window period %d is not positive", i, op.Key, op.Limit.Period)
		}
		start := window.Start(cs.now, op.Limit.Period)
		if s.clientTime {
			var err error
			if start, err = s.locate(ctx, op.Key, op.Limit.Period, start); err != nil {
				s.release(cs)
				return nil, err
			}
		}
		cs.starts[i] = start
		op.Key = counterKey(op.Key, start)
		for j := range i {
			if cs.ops[j].Key == op.Key {
				cs.native = false // Step orders ops on one key: the script does
			}
		}
	}
	return cs, nil
}

// locate returns the window that a call's op on key (of period w) counts
// in: start, the window of the call's now, unless the caller's clock went back behind an
// admitted op of the key's stripe of s.high, in which case it is the
// latest later window of key whose counter holds hits (at most
// window.MaxScan later), read in one pipeline of GETs.
func (s *Store) locate(ctx context.Context, key string, w, start int64) (int64, error) {
	hw := s.high.Latest(key)
	if hw == math.MinInt64 {
		return start, nil
	}
	last := window.Start(hw, w)
	if last <= start {
		return start, nil
	}
	n := (uint64(last) - uint64(start)) / uint64(w)
	if n > window.MaxScan {
		return start, nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
	defer cancel()
	pipe := s.client.Pipeline()
	cmds := make([]*redis.IntCmd, n)
	for i := range cmds {
		cmds[i] = redis.NewIntCmd(ctx, "get", counterKey(key, start+int64(i+1)*w))
		_ = pipe.Process(ctx, cmds[i])
	}
	_, _ = pipe.Exec(ctx)
	for i := len(cmds) - 1; i >= 0; i-- {
		c, err := counterOf(ctx, s.timeout, cmds[i], key)
		if err != nil {
			return 0, err
		}
		if c > 0 {
			return start + int64(i+1)*w, nil
		}
	}
	return start, nil
}

// counterOf returns the count that an INCRBY or a GET of a counter of key
// answered: 0 for a missing counter.
func counterOf(ctx context.Context, timeout time.Duration, cmd *redis.IntCmd, key string) (int64, error) {
	v, err := cmd.Result()
	if err == nil {
		if v > strategies.MaxExact {
			return 0, fmt.Errorf("redisstore: key %q: fixed_window counter %d out of range", key, v)
		}
		return max(v, 0), nil
	}
	var nerr *strconv.NumError
	switch {
	case errors.Is(err, redis.Nil):
		return 0, nil
	case errors.As(err, &nerr):
		return 0, fmt.Errorf("redisstore: key %q: its fixed_window counter holds no integer: %w", key, err)
	}
	return 0, unavailable(ctx, timeout, err)
}
