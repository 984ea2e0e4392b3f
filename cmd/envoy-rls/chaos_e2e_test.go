package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// Chaos tests: the built binary on a real Redis under a steady load, while
// the store is stopped (SIGSTOP), killed and restarted, slowed, or the
// machine is starved of CPU. Each run is short under `make test`; with
// CHAOS_LONG=1 (`make chaos`) each phase lasts ten times longer. The
// binary runs with its default flags except the addresses, so
// ENVOY_RLS_STORE_TIMEOUT and friends in the environment change what is
// measured.

// chaosRules admit every request: failures are the store's, not limits.
const chaosRules = `domain: chaos
descriptors:
  - key: client
    rate_limit: {unit: second, requests_per_unit: 1000000000}
  - key: heavy
    rate_limit: {unit: second, requests_per_unit: 1000000000}
`

// clientDeadline is the deadline each request carries (Envoy's filter
// timeout). Envoy's default is 20 ms; the test's client runs under the race
// detector on a shared machine, where a process may wait a second for a
// CPU, so it allows more, and still expects every answer within it.
const clientDeadline = 3 * time.Second

// chaosRate is the steady load of the chaos runs, in requests a second:
// enough to see each fault, little enough that the test's own client does
// not starve the machine it measures.
const chaosRate = 200

// slack is the failure rate a loaded machine may add to a run without any
// fault (a store call that waits longer than --store-timeout for a CPU).
const slack = 0.01

// phase scales the length of each phase of a chaos run.
func phase(short time.Duration) time.Duration {
	if os.Getenv("CHAOS_LONG") != "" {
		return 10 * short
	}
	return short
}

// target reports a missed target: the failure rates, deadlines, recovery
// times and breaker openings measured here depend on how loaded the
// machine is, so they are targets that `make chaos` (CHAOS_LONG) enforces,
// while `make test` logs them and enforces only what no load can change
// (the service answers through the fault, fails during an outage, and
// decides again after it).
func target(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CHAOS_LONG") != "" {
		t.Errorf(format, args...)
		return
	}
	t.Logf("target missed on this machine: "+format, args...)
}

// sample is one request's outcome.
type sample struct {
	at   time.Time
	took time.Duration
	code codes.Code
	msg  string
}

// loadGen sends requests at a steady rate from many goroutines and keeps
// every outcome.
type loadGen struct {
	mu      sync.Mutex
	samples []sample
}

// run sends rate requests a second made by req until ctx is done, at most
// inflight at once (a closed loop when rate is higher than inflight
// requests can be answered), each with clientDeadline; it returns when
// every request has returned.
func (g *loadGen) run(ctx context.Context, c rlsv3.RateLimitServiceClient, rate, inflight int, req func(i int) *rlsv3.RateLimitRequest) {
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	for i := 0; ; i++ {
		// Open loop: request i is due at start + i/rate, whatever came before.
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		} else if ctx.Err() != nil {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
			defer cancel()
			at := time.Now()
			_, err := c.ShouldRateLimit(rctx, req(i))
			s := sample{at: at, took: time.Since(at), code: status.Code(err)}
			if err != nil {
				s.msg = status.Convert(err).Message()
			}
			g.mu.Lock()
			g.samples = append(g.samples, s)
			g.mu.Unlock()
		}()
	}
}

// stats summarises the samples sent in [from, to).
type stats struct {
	sent, failed, late, overloaded int
	lastFailure                    time.Time
	slowest                        time.Duration
	example                        string // one failure's message
}

func (g *loadGen) stats(from, to time.Time) stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s stats
	for _, x := range g.samples {
		if x.at.Before(from) || !x.at.Before(to) {
			continue
		}
		s.sent++
		s.slowest = max(s.slowest, x.took)
		if x.code == codes.OK {
			continue
		}
		s.failed++
		if x.code == codes.DeadlineExceeded {
			s.late++
		}
		if strings.Contains(x.msg, "overloaded") {
			s.overloaded++
		}
		if x.at.After(s.lastFailure) {
			s.lastFailure = x.at
			s.example = x.code.String() + ": " + x.msg
		}
	}
	return s
}

// recovery returns how long after end the service recovered: the start of
// the first second after end in which at most slack of the requests
// failed (a loaded machine fails a few even when healthy).
func (g *loadGen) recovery(end time.Time) time.Duration {
	last := end
	g.mu.Lock()
	for _, x := range g.samples {
		if x.at.After(last) {
			last = x.at
		}
	}
	g.mu.Unlock()
	for t := end; t.Before(last); t = t.Add(100 * time.Millisecond) {
		if s := g.stats(t, t.Add(time.Second)); s.sent > 0 && s.rate() <= slack {
			return t.Sub(end)
		}
	}
	return last.Sub(end)
}

func (s stats) rate() float64 {
	if s.sent == 0 {
		return 0
	}
	return float64(s.failed) / float64(s.sent)
}

func (s stats) String() string {
	out := fmt.Sprintf("%d sent, %d failed (%.3f%%; %d late, %d overloaded), slowest %v",
		s.sent, s.failed, 100*s.rate(), s.late, s.overloaded, s.slowest.Round(time.Millisecond))
	if s.example != "" {
		out += "; last failure: " + s.example
	}
	return out
}

// chaosServe starts Redis and envoy-rls on it with default flags.
func chaosServe(t *testing.T, extra ...string) (*testservers.Server, *testservers.Service, rlsv3.RateLimitServiceClient) {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, chaosRules)
	r := testservers.Redis(t)
	p := startServe(t, nil, append([]string{"--config", rules, "--store", "redis", "--redis-url", "redis://" + r.Addr}, extra...)...)
	return r, p, rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
}

// lightReq is a small request of one client.
func lightReq(client string) func(int) *rlsv3.RateLimitRequest {
	return func(int) *rlsv3.RateLimitRequest { return request("chaos", []string{"client", client}) }
}

// busyLoops starts n CPU-bound processes and stops them (by their PID)
// when the test ends or stop is called.
func busyLoops(t *testing.T, n int) (stop func()) {
	t.Helper()
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for _, c := range cmds {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// breakerOpened counts the times the log says the breaker opened.
func breakerOpened(p *testservers.Service) int {
	n := 0
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, "store circuit breaker") && strings.Contains(line, `"open"`) {
			n++
		}
	}
	return n
}

// chaosRun runs the load at rate for before, then fault for the fault
// phase (fault returns when the fault ends), then for after; it returns the
// generator and the fault's start and end.
func chaosRun(t *testing.T, c rlsv3.RateLimitServiceClient, rate int, before, after time.Duration, fault func()) (*loadGen, time.Time, time.Time) {
	t.Helper()
	g := &loadGen{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.run(ctx, c, rate, 256, lightReq("steady")) }()
	time.Sleep(before)
	fStart := time.Now()
	fault()
	fEnd := time.Now()
	time.Sleep(after)
	cancel()
	<-done
	return g, fStart, fEnd
}

// checkFault asserts the common outcome of a fault that makes the store
// fail: every answer within the deadline, no failure before the fault, and
// no failure once the service has recovered, within recoverBy of the end.
func checkFault(t *testing.T, c rlsv3.RateLimitServiceClient, g *loadGen, fStart, fEnd time.Time, recoverBy time.Duration) {
	t.Helper()
	before := g.stats(time.Time{}, fStart)
	during := g.stats(fStart, fEnd)
	after := g.stats(fEnd, time.Now().Add(time.Hour))
	recovery := g.recovery(fEnd)
	t.Logf("before: %v", before)
	t.Logf("during: %v", during)
	t.Logf("after:  %v; recovered %v after the fault ended", after, recovery.Round(time.Millisecond))
	if before.rate() > slack {
		target(t, "%.2f%% failed before the fault", 100*before.rate())
	}
	for name, s := range map[string]stats{"before": before, "during": during, "after": after} {
		if s.late > 0 {
			target(t, "%s the fault: %d answers missed the %v deadline", name, s.late, clientDeadline)
		}
	}
	if recovery > recoverBy {
		target(t, "recovered %v after the fault ended, want at most %v", recovery, recoverBy)
	}
	if after.sent == 0 || during.sent == 0 {
		t.Errorf("the load stalled: %d sent during the fault, %d after", during.sent, after.sent)
	}
	if after.failed == after.sent {
		// Not within the run: the service must still come back.
		deadline := time.Now().Add(time.Minute)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
			_, err := c.ShouldRateLimit(ctx, lightReq("steady")(0))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no decision a minute after the fault ended: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestChaosStoreStopped(t *testing.T) {
	r, p, c := chaosServe(t)
	g, fStart, fEnd := chaosRun(t, c, chaosRate, phase(time.Second), phase(3*time.Second), func() {
		r.Pause()
		time.Sleep(phase(2 * time.Second))
		r.Resume()
	})
	checkFault(t, c, g, fStart, fEnd, 5*time.Second)
	if during := g.stats(fStart, fEnd); during.failed == 0 {
		t.Errorf("no failure while Redis was stopped: %v", during)
	}
	t.Logf("breaker opened %d times", breakerOpened(p))
}

func TestChaosStoreKilledAndRestarted(t *testing.T) {
	r, p, c := chaosServe(t)
	g, fStart, fEnd := chaosRun(t, c, chaosRate, phase(time.Second), phase(3*time.Second), func() {
		r.Stop()
		time.Sleep(phase(2 * time.Second))
		r.Start()
	})
	checkFault(t, c, g, fStart, fEnd, 5*time.Second)
	if during := g.stats(fStart, fEnd); during.failed == 0 {
		t.Errorf("no failure while Redis was down: %v", during)
	}
	// Log lines while the store was down: sampled, not one per request.
	t.Logf("breaker opened %d times; %d log lines in all", breakerOpened(p), p.OutputLines())
}

// Slowness that stays under the store timeout fails nothing more than the
// machine's own noise (the run before it is the baseline) and never opens
// the breaker: Redis is frozen for 10 ms in every 50 ms.
func TestChaosStoreSlowed(t *testing.T) {
	r, p, c := chaosServe(t)
	g, fStart, fEnd := chaosRun(t, c, chaosRate, phase(3*time.Second), phase(time.Second), func() {
		end := time.Now().Add(phase(3 * time.Second))
		for time.Now().Before(end) {
			r.Pause()
			time.Sleep(10 * time.Millisecond)
			r.Resume()
			time.Sleep(40 * time.Millisecond)
		}
	})
	base := g.stats(time.Time{}, fStart)
	during := g.stats(fStart, fEnd)
	t.Logf("baseline: %v", base)
	t.Logf("slowed:   %v", during)
	if during.rate() > base.rate()+0.01 {
		target(t, "%.2f%% failed while Redis was slowed under the timeout (%.2f%% before), want at most 1 point more", 100*during.rate(), 100*base.rate())
	}
	if n := breakerOpened(p); n > 0 {
		target(t, "the breaker opened %d times through slowness under the timeout", n)
	}
	if all := g.stats(time.Time{}, time.Now().Add(time.Hour)); all.late > 0 {
		target(t, "%d answers missed the deadline", all.late)
	}
}

// Two CPU-bound processes beside the service and Redis: a healthy Redis
// on a starved machine fails (almost) nothing with the default flags. The
// run before the busy loops is the baseline of the machine as it is (other
// jobs may load it too); the busy loops may add at most 1 %.
func TestChaosCPUStarvation(t *testing.T) {
	_, p, c := chaosServe(t)
	g, fStart, fEnd := chaosRun(t, c, chaosRate, phase(3*time.Second), phase(time.Second), func() {
		stop := busyLoops(t, 2)
		time.Sleep(phase(4 * time.Second))
		stop()
	})
	base := g.stats(time.Time{}, fStart)
	during := g.stats(fStart, fEnd)
	t.Logf("baseline:        %v", base)
	t.Logf("two busy loops:  %v", during)
	t.Logf("breaker opened %d times", breakerOpened(p))
	// The target is < 0.1 % (see docs/troubleshooting.md for the figures);
	// the bound here leaves room for a machine shared with other tests.
	if during.rate() > base.rate()+0.01 {
		target(t, "%.2f%% failed on a healthy Redis under CPU pressure (%.2f%% before), want at most 1 point more", 100*during.rate(), 100*base.rate())
	}
	if all := g.stats(time.Time{}, time.Now().Add(time.Hour)); all.late > 0 {
		target(t, "%d answers missed the deadline", all.late)
	}
}

// A heavy client (64 descriptors of 4 KB values, eight requests in flight
// at all times, each sent as soon as the previous one is answered) does
// not push a light client's error rate more than 1 point above what it is
// alone on the same machine: the heavy requests are shed first.
func TestNoisyNeighbour(t *testing.T) {
	_, p, c := chaosServe(t)
	value := strings.Repeat("v", 4000)
	heavyReq := func(i int) *rlsv3.RateLimitRequest {
		kvs := make([][]string, 64)
		for d := range kvs {
			kvs[d] = []string{"heavy", fmt.Sprintf("%d-%d-%s", i%1000, d, value)}
		}
		return request("chaos", kvs...)
	}
	alone := &loadGen{}
	actx, acancel := context.WithTimeout(context.Background(), phase(3*time.Second))
	alone.run(actx, c, chaosRate, 256, lightReq("light"))
	acancel()
	// Each client has a connection of its own, as two Envoys would.
	hc := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
	light, heavy := &loadGen{}, &loadGen{}
	ctx, cancel := context.WithTimeout(context.Background(), phase(6*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); light.run(ctx, c, chaosRate, 256, lightReq("light")) }()
	go func() { defer wg.Done(); heavy.run(ctx, hc, 1_000_000, 8, heavyReq) }()
	wg.Wait()
	a := alone.stats(time.Time{}, time.Now().Add(time.Hour))
	l := light.stats(time.Time{}, time.Now().Add(time.Hour))
	h := heavy.stats(time.Time{}, time.Now().Add(time.Hour))
	t.Logf("light client alone:     %v", a)
	t.Logf("light client with heavy: %v", l)
	t.Logf("heavy client:            %v", h)
	t.Logf("breaker opened %d times", breakerOpened(p))
	if l.rate() > a.rate()+0.01 {
		target(t, "the heavy client took the light client's error rate from %.2f%% to %.2f%%, want at most 1 point more", 100*a.rate(), 100*l.rate())
	}
	if l.late > 0 {
		target(t, "%d light answers missed the deadline", l.late)
	}
	if n := breakerOpened(p); n > 0 {
		target(t, "the heavy client opened the breaker %d times", n)
	}
}

// An outage at a high request rate writes tens of log lines a second, not
// one per request: repeated warnings are sampled.
func TestOutageLogVolume(t *testing.T) {
	r, p, c := chaosServe(t)
	r.Stop()
	before := p.OutputLines()
	g := &loadGen{}
	ctx, cancel := context.WithTimeout(context.Background(), phase(3*time.Second))
	defer cancel()
	start := time.Now()
	g.run(ctx, c, 5000, 512, lightReq("outage"))
	took := time.Since(start)
	lines := p.OutputLines() - before
	s := g.stats(time.Time{}, time.Now().Add(time.Hour))
	perSec := float64(lines) / took.Seconds()
	t.Logf("outage: %d requests in %v (%.0f/s), %d failed; %d log lines (%.1f a second)",
		s.sent, took.Round(time.Millisecond), float64(s.sent)/took.Seconds(), s.failed, lines, perSec)
	if s.failed != s.sent {
		t.Errorf("%d of %d requests succeeded with Redis down", s.sent-s.failed, s.sent)
	}
	if perSec > 100 {
		target(t, "%.1f log lines a second during the outage, want tens at most", perSec)
	}
}

// A store unreachable at start: one warning at the default level names its
// address and the error; health turns SERVING once the store answers.
func TestStoreUnreachableAtStart(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, chaosRules)
	r := testservers.Redis(t)
	r.Stop()
	// JSON logs, to read the level; no wait for SERVING, which comes
	// only once the store answers.
	p := serveWith(t, testservers.ServeOptions{NoWait: true,
		Args: []string{"--config", rules, "--store", "redis", "--redis-url", "redis://" + r.Addr, "--log-format", "json"}})
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(p.Output(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log within 30s:\n%s", what, p.Output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("store unreachable at start")
	var warning string
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, "store unreachable at start") {
			warning = line
		}
	}
	if !strings.Contains(warning, `"level":"warn"`) || !strings.Contains(warning, r.Addr) || !strings.Contains(warning, "connection refused") {
		t.Fatalf("the warning does not name the level, address and error: %s", warning)
	}
	r.Start()
	waitLog("store answers; serving")
	if n := strings.Count(p.Output(), "store unreachable at start"); n != 1 {
		t.Fatalf("%d start warnings, want one", n)
	}
}
