package strategies_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestSlidingWindowCounterRetryAfterIsExact_TraffikDefect: every refusal's
// RetryAfter is exact: refused 1µs before, admitted at it. Traffik scales
// the wait by the time into the window instead of the window, so its wait
// is too short.
func TestSlidingWindowCounterRetryAfterIsExact_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "sliding_window_counter", strategies.Limit{Requests: 7, Period: strategies.Second})
	rng := rand.New(rand.NewPCG(3, 4))
	var st strategies.State
	now := epoch0
	refusals := 0
	for range 5000 {
		now += rng.Int64N(300 * strategies.Millisecond)
		h := 1 + rng.Int64N(7)
		next, d := s.Step(st, now, lim, h)
		if !d.Allowed {
			refusals++
			if d.RetryAfter <= 0 {
				t.Fatalf("refused at %d with RetryAfter %d", now, d.RetryAfter)
			}
			if _, early := s.Step(st, now+d.RetryAfter-1, lim, h); early.Allowed {
				t.Fatalf("admitted 1µs before RetryAfter %d", d.RetryAfter)
			}
			if _, on := s.Step(st, now+d.RetryAfter, lim, h); !on.Allowed {
				t.Fatalf("refused at RetryAfter %d: %+v", d.RetryAfter, on)
			}
		}
		st = next
	}
	if refusals == 0 {
		t.Fatal("the traffic never reached the limit")
	}
}

// TestSlidingWindowCounterBoundaryWait_TraffikDefect: just after a window
// boundary the full previous window still weighs, so an over-limit
// request gets a real wait (Traffik answers 0 there).
func TestSlidingWindowCounterBoundaryWait_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "sliding_window_counter", strategies.Limit{Requests: 10, Period: strategies.Minute})
	st, _ := s.Step(strategies.State{}, epoch0+strategies.Minute-1, lim, 10)
	_, d := s.Step(st, epoch0+strategies.Minute, lim, 1)
	if d.Allowed || d.RetryAfter != 6*strategies.Second {
		t.Fatalf("at the boundary got %+v, want refused with RetryAfter 6s", d)
	}
}

// TestSlidingWindowCounterDeniedConsumesNothing_TraffikDefect: Traffik
// counts denied hits; here a refusal returns prev unchanged.
func TestSlidingWindowCounterDeniedConsumesNothing_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "sliding_window_counter", strategies.Limit{Requests: 3, Period: strategies.Second})
	st, _ := s.Step(strategies.State{}, epoch0, lim, 3)
	for i := range int64(10) {
		next, d := s.Step(st, epoch0+strategies.Second+i, lim, 1)
		if d.Allowed || next.A != st.A || next.B != st.B || next.C != st.C {
			t.Fatalf("denied step changed state %+v → %+v (%+v)", st, next, d)
		}
	}
}

func TestSlidingWindowCounterPrepare(t *testing.T) {
	s, _ := strategies.Lookup("sliding_window_counter")
	if _, err := s.Prepare(strategies.Limit{Requests: 104249, Period: strategies.Day}); err != nil {
		t.Errorf("104249/day: %v", err)
	}
	for _, lim := range []strategies.Limit{
		{Requests: -1, Period: strategies.Second},
		{Requests: 1, Period: 0},
		{Requests: 104250, Period: strategies.Day},
		{Requests: 1, Period: strategies.MaxExact + 1},
	} {
		if _, err := s.Prepare(lim); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", lim, err)
		}
	}
}

func TestSlidingWindowCounterHostileInput(t *testing.T) {
	hostileSteps(t, "sliding_window_counter", strategies.Limit{Requests: 10, Period: strategies.Second})
}

func TestSlidingWindowCounterStepDoesNotAllocate(t *testing.T) {
	requireZeroAllocs(t, "sliding_window_counter", strategies.Limit{Requests: 100, Period: strategies.Second})
}

func BenchmarkSlidingWindowCounterStep(b *testing.B) {
	benchStrategyStep(b, "sliding_window_counter", strategies.Limit{Requests: 100, Period: strategies.Second})
}
