package strategies_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestGCRAHonoursCost_TraffikDefect fails on Traffik's GCRA, which charges every
// request one emission interval whatever its cost.
func TestGCRAHonoursCost_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "gcra", strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5})
	now := epoch0
	st, d := s.Step(strategies.State{}, now, lim, 3)
	if !d.Allowed || d.Remaining != 2 {
		t.Fatalf("3 hits on a fresh key: %+v, want allowed with 2 remaining", d)
	}
	// Charging one interval per request would admit this one too.
	if _, d = s.Step(st, now, lim, 3); d.Allowed {
		t.Errorf("3 more hits within a burst of 5 were admitted: %+v", d)
	}
	// And a request above the burst can never pass.
	if _, d = s.Step(strategies.State{}, now, lim, 6); d.Allowed || !d.Exceeds || d.RetryAfter != 0 {
		t.Errorf("6 hits with burst 5: %+v, want Exceeds", d)
	}
}

// TestGCRARetryAfterHonoursTolerance_TraffikDefect fails on Traffik's GCRA, whose wait
// runs to the theoretical arrival time itself instead of to the time the
// tolerance lets the next request in.
func TestGCRARetryAfterHonoursTolerance_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "gcra", strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5})
	now := epoch0
	var st strategies.State
	for i := range 5 {
		var d strategies.Decision
		if st, d = s.Step(st, now, lim, 1); !d.Allowed {
			t.Fatalf("request %d of the burst refused: %+v", i, d)
		}
	}
	_, d := s.Step(st, now, lim, 1)
	if d.Allowed || d.RetryAfter != 100*strategies.Millisecond {
		t.Fatalf("6th request: %+v, want refused with RetryAfter 100ms (TAT − τ − now), not 500ms (TAT − now)", d)
	}
	if _, d := s.Step(st, now+d.RetryAfter-1, lim, 1); d.Allowed {
		t.Errorf("admitted 1µs before RetryAfter: %+v", d)
	}
	if _, d := s.Step(st, now+d.RetryAfter, lim, 1); !d.Allowed {
		t.Errorf("refused at RetryAfter: %+v", d)
	}
}

func TestGCRAPrepare(t *testing.T) {
	s := strategies.GCRA{}
	lim, err := s.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second})
	if err != nil {
		t.Fatal(err)
	}
	if lim.Burst != 1 {
		t.Errorf("default burst = %d, want 1", lim.Burst)
	}
	if lim, err = s.Prepare(strategies.Limit{Requests: 0, Period: strategies.Second}); err != nil {
		t.Errorf("requests 0: %v", err)
	} else if _, d := s.Step(strategies.State{}, strategies.Second, lim, 1); d.Allowed || !d.Exceeds {
		t.Errorf("requests 0 admitted a hit: %+v", d)
	}
	for _, bad := range []strategies.Limit{
		{Requests: 0, Period: strategies.Second, Burst: 3},
		{Requests: 1, Period: strategies.Second, Burst: -1},
		{Requests: 1, Period: strategies.Day, Burst: 1 << 30},
	} {
		if _, err := s.Prepare(bad); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", bad, err)
		}
	}
}

func BenchmarkGCRAStep(b *testing.B) {
	benchStrategyStep(b, "gcra", strategies.Limit{Requests: 100, Period: strategies.Second, Burst: 10})
}

func BenchmarkGCRAStepParallel(b *testing.B) {
	benchmarkBucketStep(b, "gcra", strategies.Limit{Requests: 1000, Period: strategies.Second, Burst: 20})
}

// ExampleGCRA paces "10/s" with a burst of 3: the fourth request at the
// same instant must wait one emission interval, 100 ms.
func ExampleGCRA() {
	g := strategies.GCRA{}
	lim, err := g.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	now := 1_700_000_000 * strategies.Second
	var st strategies.State
	for range 4 {
		var d strategies.Decision
		st, d = g.Step(st, now, lim, 1)
		fmt.Printf("allowed=%v remaining=%d retry_after=%dms\n", d.Allowed, d.Remaining, d.RetryAfter/strategies.Millisecond)
	}
	// Output:
	// allowed=true remaining=2 retry_after=0ms
	// allowed=true remaining=1 retry_after=0ms
	// allowed=true remaining=0 retry_after=0ms
	// allowed=false remaining=0 retry_after=100ms
}
