package strategies_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
	"github.com/envoy-rls/envoy-rls/pkg/strategies/strategytest"
)

// TestTables runs the shared step tables of every registered strategy
// against the pure step functions.
func TestTables(t *testing.T) {
	strategytest.RunTables(t, strategytest.PureApplier())
}

// TestProperties runs the shared properties of every registered strategy
// against the pure step functions; -strategytest.n and -strategytest.seed
// make longer or other runs.
func TestProperties(t *testing.T) {
	strategytest.RunProperties(t, strategytest.PureApplier(), strategytest.Seed(1), strategytest.N(3000))
}

// prepareStrategy returns lim prepared by the strategy called name.
func prepareStrategy(t testing.TB, name string, lim strategies.Limit) (strategies.Strategy, strategies.Limit) {
	t.Helper()
	s, ok := strategies.Lookup(name)
	if !ok {
		t.Fatalf("strategy %q not registered", name)
	}
	p, err := s.Prepare(lim)
	if err != nil {
		t.Fatalf("Prepare(%+v): %v", lim, err)
	}
	return s, p
}

const epoch0 = strategytest.T0

// TestFixedWindowResetsEachWindow_TraffikDefect: a "5/s" limit admits 5
// in every second. Traffik's counter key has no window id, so its count
// carries over and it behaves as 5 per 2 s.
func TestFixedWindowResetsEachWindow_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "fixed_window", strategies.Limit{Requests: 5, Period: strategies.Second})
	var st strategies.State
	for sec := range int64(10) {
		admitted := 0
		for i := range int64(8) {
			var d strategies.Decision
			st, d = s.Step(st, epoch0+sec*strategies.Second+i*100*strategies.Millisecond, lim, 1)
			if d.Allowed {
				admitted++
			}
		}
		if admitted != 5 {
			t.Fatalf("second %d admitted %d, want 5", sec, admitted)
		}
	}
}

// TestFixedWindowDeniedConsumesNothing_TraffikDefect: Traffik counts the
// hits of denied requests; a denied request must return prev unchanged.
func TestFixedWindowDeniedConsumesNothing_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "fixed_window", strategies.Limit{Requests: 3, Period: strategies.Second})
	st, _ := s.Step(strategies.State{}, epoch0, lim, 2)
	for i := range int64(5) {
		next, d := s.Step(st, epoch0+i, lim, 2)
		if d.Allowed || next.A != st.A || next.B != st.B {
			t.Fatalf("denied step changed state %+v → %+v (%+v)", st, next, d)
		}
	}
	if _, d := s.Step(st, epoch0+10, lim, 1); !d.Allowed {
		t.Fatalf("one hit left after denials, got %+v", d)
	}
}

// TestFixedWindowMatchesEnvoyReference replays random single-hit traffic
// against a model of envoyproxy/ratelimit's fixed window (which counts
// denied hits too) and requires the same verdict, remaining and reset.
func TestFixedWindowMatchesEnvoyReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, l := range []int64{0, 1, 2, 5, 50} {
		for _, w := range []int64{strategies.Second, strategies.Minute, strategies.Hour} {
			s, lim := prepareStrategy(t, "fixed_window", strategies.Limit{Requests: l, Period: w})
			var st strategies.State
			ref := map[int64]int64{} // window start → count, envoy style
			now := epoch0 + rng.Int64N(w)
			for range 2000 {
				now += rng.Int64N(3 * w / max(l, 1))
				start := now - now%w
				ref[start]++
				refOver := ref[start] > l
				refRemaining := max(l-ref[start], 0)
				var d strategies.Decision
				st, d = s.Step(st, now, lim, 1)
				if d.Allowed == refOver || d.Remaining != refRemaining || d.Reset != start+w-now {
					t.Fatalf("L=%d W=%d at %d: got %+v, reference over=%v remaining=%d reset=%d", l, w, now, d, refOver, refRemaining, start+w-now)
				}
			}
		}
	}
}

func TestFixedWindowPrepare(t *testing.T) {
	s, _ := strategies.Lookup("fixed_window")
	for _, lim := range []strategies.Limit{
		{Requests: -1, Period: strategies.Second},
		{Requests: 1, Period: 0},
		{Requests: 1, Period: -5},
		{Requests: strategies.MaxExact + 1, Period: strategies.Second},
		{Requests: 1, Period: strategies.MaxExact + 1},
	} {
		if _, err := s.Prepare(lim); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", lim, err)
		}
	}
}

// TestFixedWindowHostileInput: extreme hits and times neither panic nor
// give negative fields.
func TestFixedWindowHostileInput(t *testing.T) {
	hostileSteps(t, "fixed_window", strategies.Limit{Requests: 10, Period: strategies.Second})
}

// hostile steps extreme hits and times through the strategy called name.
func hostileSteps(t *testing.T, name string, raw strategies.Limit) {
	t.Helper()
	s, lim := prepareStrategy(t, name, raw)
	var st strategies.State
	hits := []int64{1, 0, -1, 1 << 62, -1 << 62, -1 << 63, 1<<63 - 1, 3}
	times := []int64{epoch0, epoch0 - strategies.Week, epoch0 + 1, 0, -5 * strategies.Second, epoch0 + strategies.Week}
	for _, now := range times {
		for _, h := range hits {
			var d strategies.Decision
			st, d = s.Step(st, now, lim, h)
			if d.Remaining < 0 || d.Remaining > max(lim.Requests, lim.Burst) || d.RetryAfter < 0 || d.Reset < 0 || d.TTL < 0 {
				t.Fatalf("Step(%+v, %d, %d) = %+v", st, now, h, d)
			}
			if h > max(lim.Requests, lim.Burst) && (d.Allowed || !d.Exceeds) {
				t.Fatalf("hits %d allowed or not Exceeds: %+v", h, d)
			}
		}
	}
}

// TestFixedWindowStepDoesNotAllocate: the hot path allocates nothing.
func TestFixedWindowStepDoesNotAllocate(t *testing.T) {
	requireZeroAllocs(t, "fixed_window", strategies.Limit{Requests: 100, Period: strategies.Second})
}

func requireZeroAllocs(t *testing.T, name string, raw strategies.Limit) {
	t.Helper()
	s, lim := prepareStrategy(t, name, raw)
	var st strategies.State
	now := epoch0
	if n := testing.AllocsPerRun(1000, func() {
		now += 3 * strategies.Millisecond
		st, _ = s.Step(st, now, lim, 1)
	}); n != 0 {
		t.Fatalf("%s.Step allocates %v times per call", name, n)
	}
}

func BenchmarkFixedWindowStep(b *testing.B) {
	benchStrategyStep(b, "fixed_window", strategies.Limit{Requests: 100, Period: strategies.Second})
}

func benchStrategyStep(b *testing.B, name string, raw strategies.Limit) {
	s, lim := prepareStrategy(b, name, raw)
	var st strategies.State
	now := epoch0
	b.ReportAllocs()
	for b.Loop() {
		now += 7 * strategies.Millisecond
		st, _ = s.Step(st, now, lim, 1)
	}
}
