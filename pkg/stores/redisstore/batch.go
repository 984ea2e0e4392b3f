package redisstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// pipeliner is what the batcher needs of a go-redis client: single
// commands and pipelines. *redis.Client and *redis.ClusterClient (whose
// pipelines go to every node concerned at once) satisfy it.
type pipeliner interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
}

// batcher sends script calls in pipelines: a pipeline goroutine takes
// the calls waiting in queue (up to maxBatch, after waiting window for
// more when it is not zero), sends them in one pipeline, hands every call
// its result, and starts again; the calls that arrive meanwhile wait in
// queue and go together in the next pipeline. At light load every
// goroutine does this, so that a call never waits for another's answer.
// Under heavy load (large batches: see mode) the batcher gathers: one
// goroutine (the primary) sends, and the others (spares) only while a
// pipeline has been in flight for longer than its stall limit (see
// stallLimit), so that a stalled connection holds only its own calls
// while, the rest of the time, batches are as large as one goroutine
// makes them. On a single node or sentinel-managed
// master the calls of a pipeline are merged into as few script calls as
// maxOpsPerScript allows, each deciding its Apply calls one after the
// other, each atomic on its own. In a cluster, a call is the ops of one
// Apply call on one hash slot and stays a script call of its own (a
// script cannot span slots); the pipeline sends the calls for each master
// together, to every master at once.
type batcher struct {
	s        *Store
	client   pipeliner
	merge    bool // merge the calls of a pipeline into few script calls
	queue    chan *call
	maxBatch int
	window   time.Duration

	// promote wakes a spare pipeline goroutine (it holds a value for
	// each spare at most); stalled counts the pipelines in flight for
	// longer than their stall limit; rtt is a moving average of a
	// pipeline's round trip, in nanoseconds (see landed).
	promote chan struct{}
	stalled atomic.Int32
	rtt     atomic.Int64
	// gather is set while the load is high enough for batches to gather
	// behind one pipeline in flight (see mode); avgBatch is a moving
	// average of the calls per pipeline, times batchScale.
	gather   atomic.Bool
	avgBatch atomic.Int64

	ctx    context.Context // canceled by stop: aborts pipelines in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startBatcher starts the pipeline goroutines of s on client; Store.Close
// stops them.
func startBatcher(s *Store, client pipeliner, merge bool, opts Options) *batcher {
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
		merge:    merge,
		queue:    make(chan *call, n*maxBatch),
		maxBatch: maxBatch,
		window:   opts.BatchWindow,
		ctx:      ctx,
		cancel:   cancel,
		promote:  make(chan struct{}, n-1), // one per spare
	}
	b.wg.Add(n)
	for i := range n {
		go b.loop(i == 0)
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

// A pipeline is stalled (a lost packet, a slow command, a Redis failing
// over) once it has been in flight for stallFactor times the average
// round trip, and at least minStall: a spare pipeline goroutine then
// starts sending the calls that wait.
const (
	stallFactor = 4
	minStall    = time.Millisecond
)

// stallLimit returns how long a pipeline sent now may be in flight
// before it counts as stalled.
func (b *batcher) stallLimit() time.Duration {
	return max(stallFactor*time.Duration(b.rtt.Load()), minStall)
}

// landed records that a pipeline sent with stall limit limit was answered
// after d: it moves the average round trip, by at most twice the limit,
// so that one long stall does not hide the next for long while a lasting
// slowdown still raises the limit within a few pipelines.
func (b *batcher) landed(d, limit time.Duration) {
	d = min(d, 2*limit)
	old := b.rtt.Load()
	b.rtt.Store(old + (int64(d)-old)/8)
}

// promoted waits until a spare pipeline goroutine is to send (a pipeline
// stalled), and reports false when the batcher stops first.
func (b *batcher) promoted() bool {
	select {
	case <-b.ctx.Done():
		return false
	case <-b.promote:
		return true
	}
}

// loop is one pipeline goroutine, the primary or a spare (see batcher).
// A spare sends pipelines from the moment a pipeline stalls until no
// pipeline in flight is stalled any more.
func (b *batcher) loop(primary bool) {
	defer b.wg.Done()
	if !primary && b.gather.Load() && !b.promoted() {
		return
	}
	batch := make([]*call, 0, b.maxBatch)
	var scratch flushScratch
	stall := time.AfterFunc(time.Hour, func() {
		b.stalled.Add(1)
		select {
		case b.promote <- struct{}{}:
		default: // enough spares are woken already
		}
	})
	stall.Stop()
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
		if b.gather.Load() {
			// Only a gathering batcher needs to know of a stall: while it
			// sends at once, every spare is sending already.
			limit, start := b.stallLimit(), time.Now()
			stall.Reset(limit)
			b.flush(batch, &scratch)
			if !stall.Stop() {
				b.stalled.Add(-1) // it had stalled
			}
			b.landed(time.Since(start), limit)
		} else {
			b.flush(batch, &scratch)
		}
		b.mode(len(batch), primary)
		clear(batch)
		if !primary && b.gather.Load() && b.stalled.Load() <= 0 && !b.promoted() {
			return
		}
	}
}

// The batcher gathers calls behind one pipeline in flight once pipelines
// carry gatherAbove calls on average, and sends as soon as a goroutine is
// idle again once they carry fewer than eagerBelow (more than gatherAbove
// in the same load, since gathering makes batches about twice as large).
// At light load (a few calls in flight) a call then never waits for
// another pipeline's answer; under heavy load the batches double, and so
// does what each write and read system call carries.
const (
	batchScale  = 256
	gatherAbove = 4 * batchScale
	eagerBelow  = 5 * batchScale
)

// mode records a pipeline of n calls and, when primary, switches between
// gathering and sending at once: going back to sending at once wakes
// every spare.
func (b *batcher) mode(n int, primary bool) {
	old := b.avgBatch.Load()
	avg := old + (int64(n)*batchScale-old)/16
	b.avgBatch.Store(avg)
	if !primary {
		return
	}
	switch gather := b.gather.Load(); {
	case !gather && avg >= gatherAbove:
		b.gather.Store(true)
	case gather && avg < eagerBelow:
		b.gather.Store(false)
		for range cap(b.promote) {
			select {
			case b.promote <- struct{}{}:
			default:
			}
		}
	}
}

// maxOpsPerScript bounds the ops of one script call of a pipeline: the
// waiting Apply calls go into as few script calls as this allows (an Apply
// call larger than it gets a script call of its own).
const maxOpsPerScript = 1024

// script is one script call of a pipeline and the Apply calls it
// decides, in order.
type script struct {
	calls []*call
	ops   int
	args  []any
	cmd   *redis.IntSliceCmd
}

// flushScratch is the memory one pipeline goroutine reuses from one
// flush to the next.
type flushScratch struct {
	cmds    []*redis.IntSliceCmd
	scripts []*script
	native  []*call
	all     []redis.Cmder
}

// flush sends the calls of batch whose callers still wait, in one round
// trip, and hands each its result; sc is the goroutine's scratch space. The calls go into as few script calls as maxOpsPerScript allows:
// one script call decides its Apply calls one after the other, each
// atomic and all or nothing on its own. When the server lacks the script
// or function, flush loads it and sends the script calls that found it
// missing again (they ran nothing).
func (b *batcher) flush(batch []*call, fs *flushScratch) {
	live := batch[:0]
	for _, c := range batch {
		if !c.abandoned.Load() {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeoutCause(b.ctx, b.s.timeout, errStoreTimeout)
	defer cancel()
	scripts, cmds, native, all := fs.scripts[:0], fs.cmds[:0], fs.native[:0], fs.all[:0]
	for _, c := range live {
		c.sent.Store(true)
		if c.native {
			native = append(native, c)
			continue
		}
		if len(scripts) == 0 || !b.merge || scripts[len(scripts)-1].ops+c.n > maxOpsPerScript {
			if len(scripts) < cap(scripts) {
				scripts = scripts[:len(scripts)+1]
			} else {
				scripts = append(scripts, nil)
			}
			if scripts[len(scripts)-1] == nil {
				scripts[len(scripts)-1] = &script{}
			}
			sc := scripts[len(scripts)-1]
			sc.calls, sc.ops = sc.calls[:0], 0
		}
		sc := scripts[len(scripts)-1]
		sc.calls = append(sc.calls, c)
		sc.ops += c.n
	}
	verb, name := b.s.verb()
	for _, sc := range scripts {
		sc.build(verb, name, &b.s.slackMs)
		sc.cmd = redis.NewIntSliceCmd(ctx, sc.args...)
		cmds = append(cmds, sc.cmd)
		all = append(all, sc.cmd)
	}
	for _, c := range native {
		c.at = len(all)
		all = c.commands(ctx, all)
	}
	b.exec(ctx, all)
	var again []redis.Cmder
	for range maxReloads {
		var missed error
		for _, sc := range scripts {
			if err := sc.cmd.Err(); err != nil && missing(err) {
				missed = err
				break
			}
		}
		if missed == nil {
			break
		}
		if lerr := b.s.reload(ctx, missed); lerr != nil {
			for _, sc := range scripts {
				if err := sc.cmd.Err(); err != nil && missing(err) {
					sc.cmd.SetErr(lerr)
				}
			}
			break
		}
		again = again[:0]
		verb, name := b.s.verb()
		for i, sc := range scripts {
			if err := sc.cmd.Err(); err != nil && missing(err) {
				sc.args[0], sc.args[1] = verb, name
				sc.cmd = redis.NewIntSliceCmd(ctx, sc.args...)
				cmds[i] = sc.cmd
				again = append(again, sc.cmd)
			}
		}
		b.exec(ctx, again)
	}
	for _, sc := range scripts {
		sc.answer(ctx, b.s.timeout)
		clear(sc.args)
		clear(sc.calls)
		sc.cmd = nil
	}
	for _, c := range native {
		c.answerFrom(ctx, b.s.timeout, all[c.at:])
		c.done <- struct{}{} // buffered; the last touch of c here
	}
	clear(cmds)
	clear(native)
	clear(all)
	fs.scripts, fs.cmds, fs.native, fs.all = scripts, cmds, native, all
}

// build sets sc's arguments: the script's command, the keys of every
// call, the slack, then each call's request arguments (see dispatch.lua).
func (sc *script) build(verb, name any, slack *int64) {
	keys, vals := 0, 0
	for _, c := range sc.calls {
		keys += c.n
		vals += len(c.vals)
	}
	args := sc.args[:0]
	if cap(args) < 4+keys+vals {
		args = make([]any, 0, 4+keys+vals)
	}
	args = append(args, verb, name, keys)
	for _, c := range sc.calls {
		for i := range c.keys[:c.n] {
			args = append(args, &c.keys[i])
		}
	}
	args = append(args, slack)
	for _, c := range sc.calls {
		for i := range c.vals {
			args = append(args, &c.vals[i])
		}
	}
	sc.args = args
}

// answer hands each call of sc its share of the reply, or the error.
func (sc *script) answer(ctx context.Context, timeout time.Duration) {
	err := sc.cmd.Err()
	var res []int64
	if err == nil {
		res = sc.cmd.Val()
		if len(res) != decisionWords*sc.ops {
			err = fmt.Errorf("redisstore: script returned %d integers for %d ops: %w", len(res), sc.ops, limiter.ErrUnavailable)
		}
	} else {
		err = unavailable(ctx, timeout, err)
	}
	off := 0
	for _, c := range sc.calls {
		if err != nil {
			c.err = err
		} else {
			c.res = res[off : off+decisionWords*c.n : off+decisionWords*c.n]
			off += decisionWords * c.n
		}
		c.done <- struct{}{} // buffered; the last touch of c here
	}
}

// exec sends cmds in one round trip; their errors stay in them.
func (b *batcher) exec(ctx context.Context, cmds []redis.Cmder) {
	exec(ctx, b.client, cmds)
}

// exec sends cmds on client in one round trip; their errors stay in them.
func exec(ctx context.Context, client pipeliner, cmds []redis.Cmder) {
	if len(cmds) == 1 {
		_ = client.Process(ctx, cmds[0])
		return
	}
	pipe := client.Pipeline()
	for _, cmd := range cmds {
		_ = pipe.Process(ctx, cmd)
	}
	_, _ = pipe.Exec(ctx)
}

// applyBatched implements Apply through the batcher: it queues the call
// and waits for its result, its deadline (Options.Timeout or ctx's) or
// Close, whichever comes first.
func (s *Store) applyBatched(ctx context.Context, cs *counters, out []strategies.Decision) error {
	c, err := s.getCall(cs.now, cs.ops, cs.starts, nil)
	if err != nil {
		return err
	}
	c.sent.Store(false)
	if err := s.send(ctx, c); err != nil {
		s.putCall(c) // never queued: no pipeline goroutine holds it
		return err
	}
	if err := s.await(ctx, c); err != nil {
		return err // c is abandoned
	}
	err = decode(c, out)
	s.putCall(c)
	return err
}

// send queues c for a pipeline goroutine and starts its deadline
// (Options.Timeout). On error c was not queued: the caller still owns it.
func (s *Store) send(ctx context.Context, c *call) error {
	c.timer.Reset(s.timeout)
	select {
	case s.batch.queue <- c:
		return nil
	case <-ctx.Done():
		c.timer.Stop()
		return unavailable(ctx, s.timeout, ctx.Err())
	case <-c.timer.C:
		return s.queued()
	case <-s.closed:
		c.timer.Stop()
		return errClosed()
	}
}

// await waits for the result of c, queued by send: c.res or c.err is set
// and the caller owns c again; or the deadline passes, ctx is done or the
// store is closed first, and then c is abandoned (never to be reused) and
// await returns the error.
func (s *Store) await(ctx context.Context, c *call) error {
	select {
	case <-c.done:
		c.timer.Stop()
		return c.err
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
