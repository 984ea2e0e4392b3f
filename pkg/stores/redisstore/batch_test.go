package redisstore

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// settles reports whether cond holds within a minute, polling it: long
// enough that a machine busy with other work only makes a test slower.
func settles(cond func() bool) bool {
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return cond()
		}
	}
	return true
}

// concurrently runs f(i) for i in [0, n) in n goroutines and waits.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestBatchSharesRoundTrips(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: testTimeout})
	defer s.Close()
	hook := &countHook{}
	s.client.(*redis.Client).AddHook(hook)
	ops := allStrategyOps(t, "share:")
	mustApply(t, s, now0, ops...) // loads the function
	fcall, hooked := commandCalls(t, srv, "fcall"), hook.calls.Load()

	const callers, each = 64, 20
	concurrently(callers, func(int) {
		for j := range each {
			mustApply(t, s, now0+int64(j), ops...)
		}
	})
	const n = callers * each
	// A pipeline's waiting calls share one script call.
	fcalls := commandCalls(t, srv, "fcall") - fcall
	if fcalls < 1 || fcalls >= n {
		t.Errorf("%d concurrent Apply calls ran FCALL %d times, want fewer (one per pipeline)", n, fcalls)
	}
	trips := hook.calls.Load() - hooked
	if trips >= n {
		t.Errorf("%d concurrent Apply calls took %d round trips, want fewer", n, trips)
	}
	t.Logf("%d concurrent Apply calls in %d round trips, %d FCALLs", n, trips, fcalls)
}

func TestBatchExactLimit(t *testing.T) {
	srv := testservers.Redis(t)
	for _, opts := range []Options{
		{},
		{Pipelines: 1, MaxBatch: 8},
		{Pipelines: 3, BatchWindow: time.Millisecond},
		{EvalScripts: true},
	} {
		name := "pipelines=" + strconv.Itoa(opts.Pipelines) + ",max=" + strconv.Itoa(opts.MaxBatch) + ",window=" + opts.BatchWindow.String()
		if opts.EvalScripts {
			name += ",evalsha"
		}
		t.Run(name, func(t *testing.T) {
			opts.URL, opts.ClientTime, opts.Timeout = srv.URL(), true, testTimeout
			s := open(t, opts)
			defer s.Close()
			const limit, callers, each = 100, 64, 4
			key := "exact:" + name
			lim := strategies.Limit{Requests: limit, Period: strategies.Hour}
			var admitted atomic.Int64
			concurrently(callers, func(int) {
				for range each {
					// Two ops: the first is refused once the key is full,
					// and the second must then not consume (all or nothing).
					o := mkOp(t, key, "fixed_window", lim, 1)
					other := mkOp(t, key+":other", "sliding_window_log", strategies.Limit{Requests: callers * each, Period: strategies.Hour}, 1)
					out := mustApply(t, s, now0, o, other)
					if out[0].Allowed {
						admitted.Add(1)
					}
				}
			})
			if got := admitted.Load(); got != limit {
				t.Fatalf("%d calls on a limit of %d admitted %d", callers*each, limit, got)
			}
			check := mkOp(t, key+":other", "sliding_window_log", strategies.Limit{Requests: callers * each, Period: strategies.Hour}, 0)
			if d := mustApply(t, s, now0, check)[0]; d.Remaining != callers*each-limit {
				t.Fatalf("second key: %+v, want Remaining %d (consumed only with the first)", d, callers*each-limit)
			}
		})
	}
}

func TestBatchCallerTimesOutInFlight(t *testing.T) {
	srv := testservers.Redis(t)
	// The callers without a deadline wait out the pause: the store's
	// timeout is well above it, and the pause well above the 50ms deadline
	// plus what a loaded machine adds.
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: 10 * time.Second})
	defer s.Close()
	lim := strategies.Limit{Requests: 1000, Period: strategies.Hour}
	mustApply(t, s, now0, mkOp(t, "inflight", "fixed_window", lim, 1)) // loads the function
	// The server holds every command for 2 s: the batches stay in flight.
	if _, err := srv.Do("CLIENT", "PAUSE", "2000", "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	const callers = 16
	errs := make([]error, callers)
	elapsed := make([]time.Duration, callers)
	concurrently(callers, func(i int) {
		ctx := context.Background()
		if i%2 == 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
		}
		start := time.Now()
		errs[i] = s.Apply(ctx, now0, []limiter.Op{mkOp(t, "inflight", "fixed_window", lim, 1)}, make([]strategies.Decision, 1))
		elapsed[i] = time.Since(start)
	})
	for i := range callers {
		if i%2 == 0 {
			// The caller's own deadline says nothing about Redis.
			if !errors.Is(errs[i], context.DeadlineExceeded) || errors.Is(errs[i], limiter.ErrUnavailable) {
				t.Errorf("caller %d with a 50ms deadline: %v, want its deadline and not ErrUnavailable", i, errs[i])
			}
			if elapsed[i] > 1500*time.Millisecond {
				t.Errorf("caller %d with a 50ms deadline waited %v", i, elapsed[i])
			}
		} else if errs[i] != nil {
			t.Errorf("caller %d without deadline: %v", i, errs[i])
		}
	}
	// The callers that gave up may have consumed (their calls were sent),
	// never more than once each.
	d := mustApply(t, s, now0, mkOp(t, "inflight", "fixed_window", lim, 0))[0]
	if used := 1000 - d.Remaining; used < 1+callers/2 || used > 1+callers {
		t.Fatalf("%d hits counted, want between %d and %d", used, 1+callers/2, 1+callers)
	}
}

func TestBatchCloseInFlight(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: testTimeout})
	o := mkOp(t, "close", "gcra", strategies.Limit{Requests: 1000, Period: strategies.Second, Burst: 1000}, 1)
	mustApply(t, s, now0, o)
	if _, err := srv.Do("CLIENT", "PAUSE", "500", "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	const callers = 32
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Apply(context.Background(), now0, []limiter.Op{o}, make([]strategies.Decision, 1))
		}()
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed > 5*time.Second { // they wait for nothing; sized for a loaded machine
		t.Errorf("callers returned %v after Close", elapsed)
	}
	for i, err := range errs {
		if !errors.Is(err, limiter.ErrUnavailable) {
			t.Errorf("caller %d: %v, want ErrUnavailable", i, err)
		}
	}
}

func TestBatchServerRestartUnderLoad(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: 200 * time.Millisecond})
	defer s.Close()
	lim := strategies.Limit{Requests: 1_000_000, Period: strategies.Hour}
	var ok, failed atomic.Int64
	var recovered atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := mkOp(t, "restart:"+strconv.Itoa(i), "token_bucket", lim, 1)
			out := make([]strategies.Decision, 1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := s.Apply(context.Background(), now0, []limiter.Op{o}, out)
				switch {
				case err == nil && out[0].Allowed:
					ok.Add(1)
					if recovered.Load() {
						continue
					}
				case err == nil:
					t.Errorf("refused: %+v", out[0])
					return
				case !errors.Is(err, limiter.ErrUnavailable) && !errors.Is(err, limiter.ErrOverloaded):
					t.Errorf("Apply: %v, want nil, ErrUnavailable or ErrOverloaded (queued behind the outage)", err)
					return
				default:
					failed.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	// Each phase waits for what it needs to see.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		if !settles(cond) {
			recovered.Store(true)
			close(stop)
			wg.Wait()
			t.Fatalf("a minute without %s (%d calls succeeded, %d failed)", what, ok.Load(), failed.Load())
		}
	}
	waitUntil("a call succeeding before the outage", func() bool { return ok.Load() > 0 })
	srv.Stop()
	waitUntil("a call failing while the server was down", func() bool { return failed.Load() > 0 })
	srv.Start() // a fresh server: no data, no function
	before := ok.Load()
	waitUntil("100 calls succeeding after the restart", func() bool { return ok.Load() >= before+100 })
	recovered.Store(true)
	close(stop)
	wg.Wait()
	t.Logf("%d calls succeeded, %d failed", ok.Load(), failed.Load())
}

func TestBatchGoroutinesStop(t *testing.T) {
	srv := testservers.Redis(t)
	count := func() int {
		n := 0
		buf := make([]byte, 16<<20)
		stacks := string(buf[:runtimeStack(buf)])
		for i := 0; ; {
			j := indexFrom(stacks, "redisstore.(*batcher).loop", i)
			if j < 0 {
				return n
			}
			n, i = n+1, j+1
		}
	}
	s := open(t, Options{URL: srv.URL(), Pipelines: 3, Timeout: testTimeout})
	if !settles(func() bool { return count() == 3 }) { // let the goroutines start
		t.Fatalf("%d pipeline goroutines running after a minute, want 3", count())
	}
	o := mkOp(t, "stop", "gcra", strategies.Limit{Requests: 10, Period: strategies.Second}, 1)
	mustApply(t, s, now0, o)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waits until each goroutine has signalled its end; a stack
	// dump may still catch one returning, so wait for them to be gone
	// (bounded: a goroutine that never ends fails).
	if !settles(func() bool { return count() == 0 }) {
		t.Fatalf("%d pipeline goroutines running a minute after Close", count())
	}
	if err := s.Apply(context.Background(), now0, []limiter.Op{o}, make([]strategies.Decision, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
}

func runtimeStack(buf []byte) int { return runtime.Stack(buf, true) }

func indexFrom(s, sub string, from int) int {
	if i := strings.Index(s[from:], sub); i >= 0 {
		return from + i
	}
	return -1
}

// TestBatchSplitsLargeBatches sends concurrent Apply calls whose ops
// together exceed maxOpsPerScript, so that a pipeline to a single node
// carries several script calls (and, in a cluster, many slot groups of
// concurrent calls share pipelines), and checks that every op counted
// once.
func TestBatchSplitsLargeBatches(t *testing.T) {
	for _, tc := range []struct {
		name            string
		callers, opsPer int
		opts            func(t *testing.T) Options
	}{
		{"single", 24, 100, func(t *testing.T) Options { return Options{URL: testservers.Redis(t).URL()} }},
		{"cluster", 8, 12, func(t *testing.T) Options {
			return Options{Mode: ModeCluster, Addrs: testservers.RedisCluster(t).Addrs()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts(t)
			opts.Pipelines, opts.ClientTime, opts.Timeout = 1, true, 10*time.Second
			s := open(t, opts)
			defer s.Close()
			const rounds = 3
			lim := strategies.Limit{Requests: 1000, Period: strategies.Hour}
			key := func(i, j int) string { return "split:" + strconv.Itoa(i) + ":" + strconv.Itoa(j) }
			concurrently(tc.callers, func(i int) {
				ops := make([]limiter.Op, tc.opsPer)
				for j := range ops {
					ops[j] = mkOp(t, key(i, j), "fixed_window", lim, 1)
				}
				for range rounds {
					for j, d := range mustApply(t, s, now0, ops...) {
						if !d.Allowed {
							t.Errorf("caller %d op %d refused: %+v", i, j, d)
						}
					}
				}
			})
			for i := range tc.callers {
				for _, j := range []int{0, tc.opsPer - 1} {
					o := mkOp(t, key(i, j), "fixed_window", lim, 0)
					if d := mustApply(t, s, now0, o)[0]; d.Remaining != 1000-rounds {
						t.Fatalf("caller %d op %d: remaining %d after %d rounds, want %d", i, j, d.Remaining, rounds, 1000-rounds)
					}
				}
			}
		})
	}
}

// holdFirst is a go-redis hook that holds the first command or pipeline
// sent once armed: it signals held, then waits for gate to close, as a
// connection whose packets are lost would.
type holdFirst struct {
	armed      *atomic.Bool
	held, gate chan struct{}
}

func (h holdFirst) hold() {
	if h.armed.CompareAndSwap(true, false) {
		close(h.held)
		<-h.gate
	}
}

func (h holdFirst) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h holdFirst) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.hold()
		return next(ctx, cmd)
	}
}

func (h holdFirst) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.hold()
		return next(ctx, cmds)
	}
}

// TestBatchStalledPipelineHoldsOnlyItsOwnCalls holds one pipeline in
// flight while the batcher gathers (as under heavy load) and checks that
// the pipeline is found stalled, that calls sent after it are answered
// before it is let go (a spare pipeline goroutine sends them), and that
// everything counted once.
func TestBatchStalledPipelineHoldsOnlyItsOwnCalls(t *testing.T) {
	srv := testservers.Redis(t)
	// The store's timeout is far above the test's waits: only a spare
	// pipeline can answer the calls behind the held one in time.
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: 10 * time.Minute, Pipelines: 2})
	defer s.Close()
	lim := strategies.Limit{Requests: 1000, Period: strategies.Hour}
	counter := func() limiter.Op { return mkOp(t, "stall", "fixed_window", lim, 1) }
	bucket := func() limiter.Op {
		return mkOp(t, "stall:gcra", "gcra", strategies.Limit{Requests: 1000, Period: strategies.Hour, Burst: 1000}, 1)
	}
	mustApply(t, s, now0, counter(), bucket()) // loads the function
	// Gather, as with large batches: the average stays above eagerBelow
	// for the few dozen pipelines of this test.
	s.batch.avgBatch.Store(100 * batchScale)
	s.batch.gather.Store(true)

	armed := new(atomic.Bool)
	armed.Store(true)
	h := holdFirst{armed: armed, held: make(chan struct{}), gate: make(chan struct{})}
	var release sync.Once
	let := func() { release.Do(func() { close(h.gate) }) }
	defer let() // before s.Close, which waits for the held pipeline
	s.single.AddHook(h)
	held := make(chan error, 1)
	go func() {
		held <- s.Apply(context.Background(), now0, []limiter.Op{counter()}, make([]strategies.Decision, 1))
	}()
	select {
	case <-h.held:
	case <-time.After(time.Minute):
		t.Fatal("the first pipeline was not sent within a minute")
	}

	if !settles(func() bool { return s.batch.stalled.Load() >= 1 }) {
		t.Fatal("the held pipeline was not found stalled within a minute")
	}

	const behind = 20
	done := make(chan error, 1)
	go func() {
		for i := range behind {
			op := counter()
			if i%2 == 1 {
				op = bucket()
			}
			if err := s.Apply(context.Background(), now0, []limiter.Op{op}, make([]strategies.Decision, 1)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a call behind the held pipeline: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("calls sent behind a held pipeline were not answered within a minute: the stalled pipeline holds them")
	}
	select {
	case err := <-held:
		t.Fatalf("the held call returned (%v) before its pipeline was let go", err)
	default:
	}

	let()
	if err := <-held; err != nil {
		t.Fatalf("the held call, let go: %v", err)
	}
	// The pipeline goroutine counts the stall off right after handing out
	// the answers, so wait for it.
	if !settles(func() bool { return s.batch.stalled.Load() == 0 }) {
		t.Fatalf("%d pipelines still counted as stalled a minute after the held one was answered, want 0", s.batch.stalled.Load())
	}
	check := mustApply(t, s, now0, mkOp(t, "stall", "fixed_window", lim, 0), mkOp(t, "stall:gcra", "gcra", strategies.Limit{Requests: 1000, Period: strategies.Hour, Burst: 1000}, 0))
	// One hit each before the hold, the held one, and behind/2 each after.
	if got, want := 1000-check[0].Remaining, int64(2+behind/2); got != want {
		t.Errorf("fixed_window counted %d hits, want %d", got, want)
	}
	if got, want := 1000-check[1].Remaining, int64(1+behind/2); got != want {
		t.Errorf("gcra counted %d hits, want %d", got, want)
	}
}

// TestBatchGathersUnderLoad checks that the batcher gathers calls behind
// one pipeline in flight once many calls arrive together, and sends at
// once again when they come one at a time.
func TestBatchGathersUnderLoad(t *testing.T) {
	srv := testservers.Redis(t)
	s := open(t, Options{URL: srv.URL(), ClientTime: true, Timeout: time.Minute})
	defer s.Close()
	lim := strategies.Limit{Requests: 1 << 40, Period: strategies.Hour}
	if s.batch.gather.Load() {
		t.Fatal("a new store gathers before any load")
	}
	var stop atomic.Bool
	var failed atomic.Value
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		concurrently(64, func(i int) {
			op := mkOp(t, "gather:"+strconv.Itoa(i%8), "fixed_window", lim, 1)
			for !stop.Load() {
				if err := s.Apply(context.Background(), now0, []limiter.Op{op}, make([]strategies.Decision, 1)); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}()
	// Read the mode while the load runs: as the callers stop, batches
	// shrink and the batcher may go back to sending at once.
	var gathered bool
	settles(func() bool {
		gathered = s.batch.gather.Load()
		return gathered || failed.Load() != nil
	})
	stop.Store(true)
	<-loaded
	if err := failed.Load(); err != nil {
		t.Fatalf("Apply under load: %v", err)
	}
	if !gathered {
		t.Fatalf("64 callers for a minute: average batch %.1f calls, and the batcher still sends at once", float64(s.batch.avgBatch.Load())/batchScale)
	}
	op := mkOp(t, "gather:0", "fixed_window", lim, 1)
	for i := 0; s.batch.gather.Load(); i++ { // or already back, as the load wound down
		if i == 1000 {
			t.Fatalf("1000 calls one at a time: average batch %.1f calls, and the batcher still gathers", float64(s.batch.avgBatch.Load())/batchScale)
		}
		mustApply(t, s, now0, op)
	}
}
