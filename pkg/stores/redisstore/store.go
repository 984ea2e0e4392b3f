// Package redisstore is a limiter.Store backed by Redis: a single node, a
// master watched by sentinels, or a Redis Cluster, through go-redis v9.
//
// Every strategy is stepped inside Redis by its Lua runtime
// (strategies.LuaStrategy), the same integer math as its Go Step. One
// script, built at New from the strategies' Lua sources, applies all ops
// of an Apply call at once: on a single node or a sentinel-managed master
// an Apply is one EVALSHA round trip (plus one EVAL when the server does
// not know the script yet), atomic across its keys, with the
// all-or-nothing rule applied inside the script exactly as the memory
// store applies it.
//
// In a cluster the keys of one call may live on different nodes, so the
// script runs once per hash slot, in parallel; see Store.Apply for how
// the all-or-nothing rule is kept there.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

var (
	_ limiter.Store  = (*Store)(nil)
	_ limiter.Pinger = (*Store)(nil)
)

// ErrClosed is wrapped by the errors of Apply and Ping after Close; those
// errors also wrap limiter.ErrUnavailable.
var ErrClosed = errors.New("redisstore: store closed")

// rediser is what the store needs of a go-redis client: running scripts,
// pinging and closing. *redis.Client (single node and sentinel) and
// *redis.ClusterClient satisfy it.
type rediser interface {
	redis.Scripter
	Ping(ctx context.Context) *redis.StatusCmd
	Close() error
}

// decisionWords is the number of integers the script returns per op.
const decisionWords = 6

// argsPerOp is the number of script arguments per op after now and the
// expiry slack.
const argsPerOp = 9

// Store is a limiter.Store in Redis. Create it with New; the zero value is
// not usable. A Store is safe for concurrent use; Close releases its
// connections.
type Store struct {
	client     rediser
	cluster    *redis.ClusterClient // non-nil in cluster mode
	script     *redis.Script
	ids        map[string]int64 // strategy name → id in the script
	timeout    time.Duration
	clientTime bool
	slackMs    int64 // ExpirySlack in whole milliseconds

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
	client, isCluster, err := opts.newClient()
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s, err := newStore(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	if isCluster {
		s.cluster = client.(*redis.ClusterClient)
	}
	return s, nil
}

// newStore returns a Store around client.
func newStore(client rediser, opts Options) (*Store, error) {
	src, ids, err := buildScript()
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
	return &Store{
		slackMs:    (slack + time.Millisecond - 1).Milliseconds(),
		client:     client,
		script:     redis.NewScript(src),
		ids:        ids,
		timeout:    timeout,
		clientTime: opts.ClientTime,
		closed:     make(chan struct{}),
	}, nil
}

// Apply implements limiter.Store. It is bounded by Options.Timeout (and
// by ctx); errors reaching Redis wrap limiter.ErrUnavailable.
//
// On a single node or sentinel-managed master all ops go in one script
// call, atomic across every key. In a cluster, the ops are grouped by
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
// the error.
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	select {
	case <-s.closed:
		return fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable)
	default:
	}
	if len(out) != len(ops) {
		return fmt.Errorf("redisstore: %d ops but room for %d decisions", len(ops), len(out))
	}
	if len(ops) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: %w: %w", limiter.ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.cluster != nil {
		return s.applyCluster(ctx, now, ops, out)
	}
	keys := make([]string, len(ops))
	for i := range ops {
		keys[i] = ops[i].Key
	}
	args, err := s.args(now, ops, nil)
	if err != nil {
		return err
	}
	return s.run(ctx, keys, args, out)
}

// args returns the script arguments for ops at now; hits, when not nil,
// replaces the ops' Hits.
func (s *Store) args(now int64, ops []limiter.Op, hits []int64) ([]any, error) {
	args := make([]any, 0, 2+argsPerOp*len(ops))
	if s.clientTime {
		args = append(args, now, s.slackMs)
	} else {
		args = append(args, int64(-1), s.slackMs)
	}
	for i := range ops {
		op := &ops[i]
		if op.Strategy == nil {
			return nil, fmt.Errorf("redisstore: op %d (key %q) has no strategy", i, op.Key)
		}
		id, ok := s.ids[op.Strategy.Name()]
		if !ok {
			return nil, fmt.Errorf("redisstore: strategy %q has no Lua runtime", op.Strategy.Name())
		}
		h := op.Hits
		if hits != nil {
			h = hits[i]
		}
		indep := 0
		if op.Independent {
			indep = 1
		}
		lim := &op.Limit
		args = append(args, id, lim.Requests, lim.Period, lim.Burst, lim.MaxDebt, lim.RateNum, lim.RateDen, h, indep)
	}
	return args, nil
}

// run runs the script once on keys with args and decodes its decisions
// into out, which has one element per key.
func (s *Store) run(ctx context.Context, keys []string, args []any, out []strategies.Decision) error {
	res, err := s.script.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return unavailable(ctx, s.timeout, err)
	}
	if len(res) != decisionWords*len(out) {
		return fmt.Errorf("redisstore: script returned %d integers for %d ops: %w", len(res), len(out), limiter.ErrUnavailable)
	}
	for i := range out {
		w := res[decisionWords*i : decisionWords*(i+1)]
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

// pingTimeout bounds Ping when ctx has no deadline.
const pingTimeout = time.Second

// Ping reports whether Redis answers: the node, the master the sentinels
// name, or every master of a cluster. Without a deadline in ctx it gives
// up after a second. Its errors wrap limiter.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.closed:
		return fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable)
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
		return unavailable(ctx, pingTimeout, err)
	}
	return nil
}

// Close closes the connections; later calls to Apply and Ping fail with
// ErrClosed. Close may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		if err := s.client.Close(); err != nil {
			s.closeErr = fmt.Errorf("redisstore: close: %w", err)
		}
	})
	return s.closeErr
}
