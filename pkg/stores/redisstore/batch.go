package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// batcher sends the Apply calls of a single node or sentinel-managed
// master in pipelines: a fixed number of goroutines each take the calls
// waiting in queue (up to maxBatch, after waiting window for more when it
// is not zero) and send them as one pipeline of FCALL (or EVALSHA) commands over one
// connection, then hand every call its result. Each command is one Apply
// call, atomic on its own; a pipeline only shares the round trip.
type batcher struct {
	s        *Store
	client   *redis.Client
	queue    chan *call
	maxBatch int
	window   time.Duration

	ctx    context.Context // canceled by stop: aborts pipelines in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startBatcher starts the pipeline goroutines of s on client; Store.Close
// stops them.
func startBatcher(s *Store, client *redis.Client, opts Options) *batcher {
	n := opts.Pipelines
	if n == 0 {
		n = DefaultPipelines
	}
	maxBatch := opts.MaxBatch
	if maxBatch == 0 {
		maxBatch = DefaultMaxBatch
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher{
		s:        s,
		client:   client,
		queue:    make(chan *call, n*maxBatch),
		maxBatch: maxBatch,
		window:   opts.BatchWindow,
		ctx:      ctx,
		cancel:   cancel,
	}
	b.wg.Add(n)
	for range n {
		go b.loop()
	}
	return b
}

// wait waits for the pipeline goroutines to return, once Close has
// canceled b.ctx and closed the client (which interrupts the I/O of the
// pipelines in flight). The calls they leave unanswered are those of
// callers that wait on the store's closed channel, closed before.
func (b *batcher) wait() {
	b.wg.Wait()
}

// loop is one pipeline goroutine.
func (b *batcher) loop() {
	defer b.wg.Done()
	batch := make([]*call, 0, b.maxBatch)
	cmds := make([]*redis.IntSliceCmd, 0, b.maxBatch)
	var window *time.Timer
	if b.window > 0 {
		window = time.NewTimer(b.window)
		window.Stop()
	}
	for {
		select {
		case <-b.ctx.Done():
			return
		case c := <-b.queue:
			batch = append(batch[:0], c)
		}
		if window != nil {
			window.Reset(b.window)
		wait:
			for len(batch) < b.maxBatch {
				select {
				case c := <-b.queue:
					batch = append(batch, c)
				case <-window.C:
					break wait
				case <-b.ctx.Done():
					window.Stop()
					return
				}
			}
			window.Stop()
		}
	drain:
		for len(batch) < b.maxBatch {
			select {
			case c := <-b.queue:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		cmds = b.flush(batch, cmds[:0])
		clear(batch)
		clear(cmds)
	}
}

// flush sends the calls of batch whose callers still wait, in one round
// trip, and hands each its result; cmds is scratch space, returned for
// reuse. When the server lacks the script or function, flush loads it
// and sends the calls that found it missing again (they ran nothing).
func (b *batcher) flush(batch []*call, cmds []*redis.IntSliceCmd) []*redis.IntSliceCmd {
	live := batch[:0]
	for _, c := range batch {
		if !c.abandoned.Load() {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return cmds
	}
	ctx, cancel := context.WithTimeoutCause(b.ctx, b.s.timeout, errStoreTimeout)
	defer cancel()
	for _, c := range live {
		c.sent.Store(true)
		cmds = append(cmds, redis.NewIntSliceCmd(ctx, c.args...))
	}
	b.exec(ctx, cmds)
	var retry []int
	var again []*redis.IntSliceCmd
	for range maxReloads {
		retry = retry[:0]
		for i, cmd := range cmds {
			if err := cmd.Err(); err != nil && missing(err) {
				retry = append(retry, i)
			}
		}
		if len(retry) == 0 || !b.s.reload(ctx, cmds[retry[0]].Err()) {
			break
		}
		again = again[:0]
		for _, i := range retry {
			c := live[i]
			c.args[0], c.args[1] = b.s.verb()
			cmds[i] = redis.NewIntSliceCmd(ctx, c.args...)
			again = append(again, cmds[i])
		}
		b.exec(ctx, again)
	}
	for i, c := range live {
		if err := cmds[i].Err(); err != nil {
			c.err = unavailable(ctx, b.s.timeout, err)
		} else {
			c.res = cmds[i].Val()
		}
		c.done <- struct{}{} // buffered; the last touch of c here
	}
	return cmds
}

// exec sends cmds in one round trip; their errors stay in them.
func (b *batcher) exec(ctx context.Context, cmds []*redis.IntSliceCmd) {
	if len(cmds) == 1 {
		_ = b.client.Process(ctx, cmds[0])
		return
	}
	pipe := b.client.Pipeline()
	for _, cmd := range cmds {
		_ = pipe.Process(ctx, cmd)
	}
	_, _ = pipe.Exec(ctx)
}

// applyBatched implements Apply through the batcher: it queues the call
// and waits for its result, its deadline (Options.Timeout or ctx's) or
// Close, whichever comes first.
func (s *Store) applyBatched(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	c, err := s.getCall(now, ops, nil)
	if err != nil {
		return err
	}
	c.sent.Store(false)
	c.timer.Reset(s.timeout)
	select {
	case s.batch.queue <- c:
	case <-ctx.Done():
		c.timer.Stop()
		s.putCall(c) // never queued: no pipeline goroutine holds it
		return unavailable(ctx, s.timeout, ctx.Err())
	case <-c.timer.C:
		s.putCall(c)
		return s.queued()
	case <-s.closed:
		c.timer.Stop()
		s.putCall(c)
		return errClosed()
	}
	select {
	case <-c.done:
		c.timer.Stop()
		err := c.err
		if err == nil {
			err = decode(c, out)
		}
		s.putCall(c)
		return err
	case <-ctx.Done():
		s.abandon(c)
		return unavailable(ctx, s.timeout, ctx.Err())
	case <-c.timer.C:
		s.abandon(c)
		if !c.sent.Load() {
			return s.queued()
		}
		return s.timedOut()
	case <-s.closed:
		s.abandon(c)
		return errClosed()
	}
}

// abandon marks c, queued or in flight, as given up by its caller: a
// pipeline goroutine that has not sent it yet skips it, and its result is
// dropped. c is not reused, since a pipeline goroutine may still hold it.
func (s *Store) abandon(c *call) {
	c.abandoned.Store(true)
	c.timer.Stop()
}

// timedOut returns the error of a call that got no answer within
// Options.Timeout.
func (s *Store) timedOut() error {
	return fmt.Errorf("redisstore: no answer within the %v timeout: %w: %w", s.timeout, limiter.ErrUnavailable, context.DeadlineExceeded)
}
