package strategies_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestSlidingWindowLogExceedsHasNoInfiniteWait_TraffikDefect: a request of
// more hits than the limit is refused with Exceeds and RetryAfter 0;
// Traffik answers an infinite wait.
func TestSlidingWindowLogExceedsHasNoInfiniteWait_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "sliding_window_log", strategies.Limit{Requests: 5, Period: strategies.Second})
	st, _ := s.Step(strategies.State{}, epoch0, lim, 2)
	_, d := s.Step(st, epoch0+1, lim, 6)
	if d.Allowed || !d.Exceeds || d.RetryAfter != 0 || d.Remaining != 3 {
		t.Fatalf("got %+v, want Exceeds with RetryAfter 0 and Remaining 3", d)
	}
}

// TestSlidingWindowLogDeniedConsumesNothing_TraffikDefect: Traffik counts
// denied hits; here a refusal returns prev unchanged.
func TestSlidingWindowLogDeniedConsumesNothing_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "sliding_window_log", strategies.Limit{Requests: 3, Period: strategies.Second})
	st, _ := s.Step(strategies.State{}, epoch0, lim, 3)
	for i := range int64(10) {
		next, d := s.Step(st, epoch0+1+i, lim, 1)
		if d.Allowed || !slices.Equal(next.Log, st.Log) {
			t.Fatalf("denied step changed state %+v → %+v (%+v)", st, next, d)
		}
	}
	if _, d := s.Step(st, epoch0+strategies.Second, lim, 3); !d.Allowed {
		t.Fatalf("refused after the window slid: %+v", d)
	}
}

// TestSlidingWindowLogKeepsPrev: Step never writes to prev.Log, whether it
// appends, merges, expires or refunds, even when prev.Log has spare
// capacity.
func TestSlidingWindowLogKeepsPrev(t *testing.T) {
	s, lim := prepareStrategy(t, "sliding_window_log", strategies.Limit{Requests: 10, Period: strategies.Second})
	log := make([]strategies.Entry, 3, 8)
	copy(log, []strategies.Entry{{At: epoch0, Hits: 2}, {At: epoch0 + 100, Hits: 3}, {At: epoch0 + 200, Hits: 1}})
	prev := strategies.State{Log: log}
	want := slices.Clone(log)
	for _, c := range []struct{ at, hits int64 }{
		{epoch0 + 200, 1},                     // merges into the newest entry
		{epoch0 + 300, 2},                     // appends into the spare capacity
		{epoch0 + 300, -2},                    // refunds part of an entry
		{epoch0 + 300, -1},                    // refunds a whole entry
		{epoch0 + strategies.Second + 150, 1}, // expires the oldest two
	} {
		next, _ := s.Step(prev, c.at, lim, c.hits)
		if !slices.Equal(prev.Log, want) {
			t.Fatalf("Step(at %d, hits %d) wrote to prev.Log: %v, want %v", c.at, c.hits, prev.Log, want)
		}
		var sum int64
		for _, e := range next.Log {
			sum += e.Hits
		}
		if sum > lim.Requests || sum < 0 {
			t.Fatalf("next log sums to %d", sum)
		}
	}
}

func TestSlidingWindowLogPrepare(t *testing.T) {
	s, _ := strategies.Lookup("sliding_window_log")
	if _, err := s.Prepare(strategies.Limit{Requests: strategies.MaxLogLimit, Period: strategies.Day}); err != nil {
		t.Errorf("MaxLogLimit/day: %v", err)
	}
	for _, lim := range []strategies.Limit{
		{Requests: -1, Period: strategies.Second},
		{Requests: 1, Period: 0},
		{Requests: strategies.MaxLogLimit + 1, Period: strategies.Second},
	} {
		if _, err := s.Prepare(lim); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", lim, err)
		}
	}
}

func TestSlidingWindowLogHostileInput(t *testing.T) {
	hostileSteps(t, "sliding_window_log", strategies.Limit{Requests: 10, Period: strategies.Second})
}

func BenchmarkSlidingWindowLogStep(b *testing.B) {
	benchStrategyStep(b, "sliding_window_log", strategies.Limit{Requests: 100, Period: strategies.Second})
}
