// Package redisstore is a limiter.Store backed by Redis: a single node, a
// master watched by sentinels, or a Redis Cluster, through go-redis v9.
//
// Every strategy is stepped inside Redis by its Lua runtime
// (strategies.LuaStrategy), the same integer math as its Go Step. One
// script, built at New from the strategies' Lua sources, applies all ops
// of an Apply call at once: on a single node or a sentinel-managed master
// an Apply is one script call, atomic across its keys, with the
// all-or-nothing rule applied inside the script exactly as the memory
// store applies it. The exception is fixed_window, which keeps a plain
// counter per window: an Apply call made only of fixed_window ops runs
// no script but an INCRBY and a PEXPIRE (or a GET) per op, and its
// decisions are computed in Go from the counts (see counter.go).
//
// Apply calls made concurrently share round trips: pipeline goroutines
// owned by the Store (Options.Pipelines) take the calls waiting in a
// queue and send them together; under heavy load one pipeline at a time,
// the others only while a pipeline stalls. On a single node or
// sentinel-managed master they go as one script call that decides them
// one after the other, each atomic on its own; in a cluster, as one
// pipeline per master of one script call per (Apply call, hash slot)
// (see Options.MaxBatch and Options.BatchWindow).
//
// On Redis 7 and later, in single and sentinel modes, the script is a
// function library, loaded once by FUNCTION LOAD and called with FCALL, so
// that the strategies' Lua code is compiled and set up once per load
// instead of once per call; before Redis 7 (or when Options.EvalScripts
// is set, and always in cluster mode) it runs with EVALSHA. A server that
// lacks the script or function (after a restart, FLUSHALL of the script
// cache, FUNCTION FLUSH, a failover to a fresh master) gets it again at
// the next call, which then runs.
//
// In a cluster the keys of one call may live on different nodes, so the
// script runs once per hash slot, in parallel; see Store.Apply for how
// the all-or-nothing rule is kept there.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

var (
	_ limiter.Store  = (*Store)(nil)
	_ limiter.Pinger = (*Store)(nil)
)

// ErrClosed is wrapped by the errors of Apply and Ping after Close; those
// errors also wrap limiter.ErrUnavailable.
var ErrClosed = errors.New("redisstore: store closed")

// rediser is what the store needs of a go-redis client: running
// commands, pinging and closing. *redis.Client (single node and sentinel)
// and *redis.ClusterClient satisfy it.
type rediser interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
	Ping(ctx context.Context) *redis.StatusCmd
	ScriptLoad(ctx context.Context, script string) *redis.StringCmd
	Close() error
}

// decisionWords is the number of integers the script returns per op.
const decisionWords = 6

// argsPerOp returns the number of script arguments per op, after a
// request's header (now and its number of ops): the strategy id, the
// limit in the layout of the strategy registry (strategies.EncodeLimit),
// hits, independent and the window start of a counter op (counter.go).
func argsPerOp() int { return 4 + strategies.LimitArgs() }

// headerArgs is the number of script arguments of a request's header.
const headerArgs = 2

// Store is a limiter.Store in Redis. Create it with New; the zero value is
// not usable. A Store is safe for concurrent use; Close releases its
// connections and stops its goroutines.
type Store struct {
	client     rediser
	cluster    *redis.ClusterClient // non-nil in cluster mode
	single     *redis.Client        // non-nil in single and sentinel modes
	scripts    *scripts
	sha        any              // SHA1 of scripts.eval (a string), boxed once
	fn         any              // scripts.fn, boxed once
	fcall      atomic.Bool      // run the script with FCALL, not EVALSHA
	ids        map[string]int64 // strategy name → id in the script
	timeout    time.Duration
	clientTime bool
	slackMs    int64 // ExpirySlack in whole milliseconds
	clock      serverClock
	high       *window.HighWater // with clientTime: the fixed_window clock going back

	batch *batcher // nil when Apply calls are not batched
	calls sync.Pool
	forms sync.Pool // of *counters

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// New returns a Store for opts. It validates opts and builds the client
// but does not connect: a Store whose server is down is created
// nevertheless, its Apply fails with limiter.ErrUnavailable until the
// server answers, and Ping reports reachability. The error of New lists
// every problem of opts at once.
func New(ctx context.Context, opts Options) (*Store, error) {
	_ = ctx // New does no I/O (see above); ctx is part of the signature for callers that pass one everywhere
	client, _, err := opts.newClient()
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s, err := newStore(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return s, nil
}

// newStore returns a Store around client, a *redis.Client (whose Apply
// calls are batched unless opts.MaxBatch is 1) or a *redis.ClusterClient.
func newStore(client rediser, opts Options) (*Store, error) {
	sc, err := buildScripts()
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	slack := opts.ExpirySlack
	if slack == 0 && opts.ClientTime {
		slack = DefaultClientTimeSlack
	}
	s := &Store{
		slackMs:    (slack + time.Millisecond - 1).Milliseconds(),
		client:     client,
		scripts:    sc,
		sha:        redis.NewScript(sc.eval).Hash(),
		fn:         sc.fn,
		ids:        sc.ids,
		timeout:    timeout,
		clientTime: opts.ClientTime,
		high:       window.NewHighWater(),
		closed:     make(chan struct{}),
	}
	s.calls.New = func() any { return newCall() }
	s.forms.New = func() any { return new(counters) }
	switch c := client.(type) {
	case *redis.ClusterClient:
		s.cluster = c
		if opts.MaxBatch != 1 {
			s.batch = startBatcher(s, c, false, opts)
		}
	case *redis.Client:
		s.single = c
		s.fcall.Store(!opts.EvalScripts)
		if opts.MaxBatch != 1 {
			s.batch = startBatcher(s, c, true, opts)
		}
	}
	return s, nil
}

// call is one script call, or one native call of counter commands: its
// arguments, built without boxing integers (go-redis writes *string and
// *int64 arguments), and, once sent, its result. A call is reused through
// Store.calls, except when its caller gave up while a pipeline goroutine
// still held it.
type call struct {
	args []any    // FCALL or EVALSHA, the function or SHA1, the number of keys, the keys, the slack, vals
	keys []string // the keys args point into
	vals []int64  // the request's script arguments: now, the number of ops, argsPerOp per op
	n    int      // number of ops

	res []int64 // the script's reply, once done
	err error   // or the error of the call

	// A native call (counter.go) runs no script: per op, an INCRBY of
	// delta and a PEXPIRE of ttl milliseconds on its counter key, or a GET
	// of it when delta is 0. counts receives, per op, the counter after
	// the INCRBY or as read.
	native bool
	delta  []int64
	ttl    []int64
	counts []int64
	at     int // index of its first command in its pipeline (batched calls)

	done      chan struct{} // receives once the call is done (batched calls)
	timer     *time.Timer   // bounds the caller's wait (batched calls)
	abandoned atomic.Bool   // the caller has returned: do not send, drop the result
	sent      atomic.Bool   // a pipeline goroutine has sent it (batched calls)
}

func newCall() *call {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan struct{}, 1), timer: t}
}

// getCall returns a script call from the pool with its arguments built
// for ops at now (−1: the server's TIME), whose counter ops count in the
// windows starting at starts (nil when there are none); hits, when not
// nil, replaces the ops' Hits.
func (s *Store) getCall(now int64, ops []limiter.Op, starts, hits []int64) (*call, error) {
	c := s.calls.Get().(*call)
	c.native = false
	if err := s.build(c, now, ops, starts, hits); err != nil {
		s.calls.Put(c)
		return nil, err
	}
	return c, nil
}

// putCall returns c, which no goroutine holds any more, to the pool.
func (s *Store) putCall(c *call) {
	c.res, c.err = nil, nil
	clear(c.keys) // do not pin the caller's key strings
	s.calls.Put(c)
}

// build fills c's arguments for ops at now, with the window starts of
// their counter ops (nil: none); hits, when not nil, replaces the ops'
// Hits.
func (s *Store) build(c *call, now int64, ops []limiter.Op, starts, hits []int64) error {
	n := len(ops)
	per := argsPerOp()
	nv := headerArgs + per*n
	if cap(c.keys) < n {
		c.keys = make([]string, n)
	}
	if cap(c.vals) < nv {
		c.vals = make([]int64, nv)
	}
	if cap(c.args) < 4+n+nv {
		c.args = make([]any, 0, 4+n+nv)
	}
	keys, vals := c.keys[:n], c.vals[:nv]
	c.keys, c.vals = keys, vals
	vals[0] = now
	vals[1] = int64(n)
	for i := range ops {
		op := &ops[i]
		if op.Strategy == nil {
			return fmt.Errorf("redisstore: op %d (key %q) has no strategy", i, op.Key)
		}
		id, ok := s.ids[op.Strategy.Name()]
		if !ok {
			return fmt.Errorf("redisstore: strategy %q has no Lua runtime", op.Strategy.Name())
		}
		h := op.Hits
		if hits != nil {
			h = hits[i]
		}
		var indep int64
		if op.Independent {
			indep = 1
		}
		keys[i] = op.Key
		v := vals[headerArgs+per*i : headerArgs+per*(i+1)]
		v[0] = id
		j := 1 + strategies.EncodeLimit(v[1:], op.Limit)
		v[j], v[j+1], v[j+2] = h, indep, 0
		if starts != nil {
			v[j+2] = starts[i]
		}
	}
	verb, name := s.verb()
	args := append(c.args[:0], verb, name, n)
	for i := range keys {
		args = append(args, &keys[i])
	}
	args = append(args, &s.slackMs)
	for i := range vals {
		args = append(args, &vals[i])
	}
	c.args, c.n = args, n
	return nil
}

// decode writes the decisions of c's reply into out, which has one
// element per op of c.
func decode(c *call, out []strategies.Decision) error {
	if len(c.res) != decisionWords*len(out) {
		return fmt.Errorf("redisstore: script returned %d integers for %d ops: %w", len(c.res), len(out), limiter.ErrUnavailable)
	}
	for i := range out {
		w := c.res[decisionWords*i : decisionWords*(i+1)]
		out[i] = strategies.Decision{
			Allowed:    w[0] == 1,
			Exceeds:    w[1] == 1,
			Remaining:  w[2],
			Reset:      w[3],
			RetryAfter: w[4],
			TTL:        w[5],
		}
	}
	return nil
}

// Apply implements limiter.Store. It is bounded by Options.Timeout (and
// by ctx); errors reaching Redis wrap limiter.ErrUnavailable.
//
// A call of fixed_window ops only, on distinct keys and without refunds,
// runs no script: see counter.go. On a single node or sentinel-managed
// master the ops of any other call go in one script call, atomic across
// every key. Calls made concurrently share round
// trips and script calls (see Options.MaxBatch): the script call of a
// pipeline decides the waiting calls of other goroutines too, one after
// the other. A call whose deadline passes returns at once, even when its
// pipeline is still in flight; its script may still run.
//
// In a cluster, the ops are grouped by
// hash slot (ops on one slot, hence every op on one key, stay together
// and in order) and the groups run in parallel, each atomic on its own.
// When a group refuses an op that is not Independent and has Hits > 0,
// the other groups have already consumed: a second script call per such
// group refunds what it consumed (Step with −Hits) and re-checks its ops,
// whose decisions then report a check as the rule requires. Between the
// consumption and the refund, other requests may see the consumed quota
// (they can be refused when they would have passed, never the reverse);
// and a refund gives back the newest admissions of a log or queue, which
// are this call's unless another request was admitted on the key in
// between. When a refund call fails, its group's decisions stay those of
// the consuming call and Apply still returns the refused op's decision
// without error: the request is refused either way. When a group's call
// fails, Apply refunds the groups that consumed (best effort) and returns
// the error. The slot groups of concurrent Apply calls share pipelines,
// one per master, each group still a script call of its own.
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	select {
	case <-s.closed:
		return errClosed()
	default:
	}
	if len(out) != len(ops) {
		return fmt.Errorf("redisstore: %d ops but room for %d decisions", len(ops), len(out))
	}
	if len(ops) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: the caller gave up before the call: %w", err)
	}
	cs, err := s.prepare(ctx, now, ops)
	if err != nil {
		return err
	}
	defer s.release(cs)
	switch {
	case cs.native:
		err = s.applyNative(ctx, cs, out)
	case s.cluster != nil:
		err = s.applyCluster(ctx, cs, out)
	case s.batch != nil && !solo(ops):
		err = s.applyBatched(ctx, cs, out)
	default:
		err = s.applyAlone(ctx, cs, out)
	}
	if err == nil && s.clientTime && cs.fixed {
		for i := range ops {
			if isFixedWindow(ops[i].Strategy) && ops[i].Hits > 0 && out[i].Allowed {
				s.high.Raise(ops[i].Key, cs.now)
			}
		}
	}
	return err
}

// applyAlone implements Apply with one script call of its own.
func (s *Store) applyAlone(ctx context.Context, cs *counters, out []strategies.Decision) error {
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
	defer cancel()
	c, err := s.getCall(cs.now, cs.ops, cs.starts, nil)
	if err != nil {
		return err
	}
	defer s.putCall(c)
	if err := s.run(ctx, c); err != nil {
		return err
	}
	return decode(c, out)
}

// errClosed returns the error of a call after Close.
func errClosed() error {
	return fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable)
}

// verb returns the command that runs the script and its first argument:
// FCALL and the function, or EVALSHA and the script's SHA1.
func (s *Store) verb() (any, any) {
	if s.fcall.Load() {
		return "fcall", s.fn
	}
	return "evalsha", s.sha
}

// maxReloads bounds the attempts to send a call again after its server
// lacked the script or function: a reload, a fall back from functions to
// scripts and its reload, and one more for a reload that raced with a
// flush.
const maxReloads = 3

// run sends c on its own and sets c.res. When the server lacks the
// script or function it loads it and sends c again (see reload).
func (s *Store) run(ctx context.Context, c *call) error {
	for attempt := 0; ; attempt++ {
		cmd := redis.NewIntSliceCmd(ctx, c.args...)
		err := s.client.Process(ctx, cmd)
		if err != nil && attempt < maxReloads && missing(err) {
			if err = s.reload(ctx, err); err == nil {
				c.args[0], c.args[1] = s.verb()
				continue
			}
		}
		if err != nil {
			return unavailable(ctx, s.timeout, err)
		}
		c.res = cmd.Val()
		return nil
	}
}

// missing reports whether err, the error of a script call, says that the
// server does not know the script (NOSCRIPT: a flushed script cache, a
// restarted or new server) or the function (FUNCTION FLUSH, a new
// server, or a server without functions). Such a call ran nothing.
func missing(err error) bool {
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		return true
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	// Redis's answer to a FCALL of an unknown function or, before Redis
	// 7, of an unknown command.
	msg := rerr.Error()
	return strings.HasPrefix(msg, "ERR") && (strings.Contains(msg, "Function not found") || strings.Contains(msg, "unknown command"))
}

// refused reports whether err is a reply of the server that refuses a
// command for good: an ERR (an unknown command) or NOPERM (an ACL).
func refused(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "ERR") || strings.HasPrefix(msg, "NOPERM")
}

// reload handles err, the error of a call for which missing is true: it
// loads the script (SCRIPT LOAD, on every master of a cluster) or the
// function library (FUNCTION LOAD REPLACE). When the server refuses
// functions (before Redis 7, or an ACL without FUNCTION), the store
// switches to EVALSHA for good. reload returns nil when the call should
// be sent again, with the command s.verb names, or else the error that
// kept it from loading (a lost connection, say), which is then the call's
// error: the server's "no such script" says nothing once the load failed.
func (s *Store) reload(ctx context.Context, err error) error {
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		return s.client.ScriptLoad(ctx, s.scripts.eval).Err()
	}
	if !s.fcall.Load() || s.single == nil {
		return nil // a FCALL sent before the switch to EVALSHA
	}
	lerr := s.single.FunctionLoadReplace(ctx, s.scripts.library).Err()
	if lerr != nil && refused(lerr) {
		s.fcall.Store(false)
		return nil
	}
	return lerr
}

// pingTimeout bounds Ping when ctx has no deadline.
const pingTimeout = time.Second

// Ping reports whether Redis answers: the node, the master the sentinels
// name, or every master of a cluster. Without a deadline in ctx it gives
// up after a second. Its errors wrap limiter.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.closed:
		return errClosed()
	default:
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pingTimeout)
		defer cancel()
	}
	var err error
	if s.cluster != nil {
		err = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	} else {
		err = s.client.Ping(ctx).Err()
	}
	if err != nil {
		return pingFailed(ctx, err)
	}
	return nil
}

// Close closes the connections and stops the pipeline goroutines; later
// calls to Apply and Ping fail with ErrClosed, and so do the Apply calls
// waiting for a pipeline when Close is called. Close may be called more
// than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.batch != nil {
			s.batch.cancel()
		}
		if err := s.client.Close(); err != nil {
			s.closeErr = fmt.Errorf("redisstore: close: %w", err)
		}
		if s.batch != nil {
			s.batch.wait()
		}
	})
	return s.closeErr
}
