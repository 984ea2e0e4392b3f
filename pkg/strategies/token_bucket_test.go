package strategies_test

import (
	"errors"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestTokenBucketExceedsHasNoUnmeetableWait_TraffikDefect: a request of
// more hits than the capacity is refused with Exceeds and RetryAfter 0;
// Traffik answers a wait after which the bucket still cannot hold it.
func TestTokenBucketExceedsHasNoUnmeetableWait_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "token_bucket", strategies.Limit{Requests: 5, Period: strategies.Second})
	_, d := s.Step(strategies.State{}, epoch0, lim, 6)
	if d.Allowed || !d.Exceeds || d.RetryAfter != 0 || d.Remaining != 5 {
		t.Fatalf("got %+v, want Exceeds with RetryAfter 0 and Remaining 5", d)
	}
	// At capacity it is a matter of waiting, and the wait is met exactly.
	st, _ := s.Step(strategies.State{}, epoch0, lim, 1)
	_, d = s.Step(st, epoch0, lim, 5)
	if d.Allowed || d.Exceeds || d.RetryAfter != 200*strategies.Millisecond {
		t.Fatalf("got %+v, want refused with RetryAfter 200ms", d)
	}
	if _, d := s.Step(st, epoch0+d.RetryAfter, lim, 5); !d.Allowed {
		t.Fatalf("refused after RetryAfter: %+v", d)
	}
}

// TestTokenBucketDeniedConsumesNothing_TraffikDefect: Traffik counts denied
// hits; here a refusal returns prev unchanged.
func TestTokenBucketDeniedConsumesNothing_TraffikDefect(t *testing.T) {
	s, lim := prepareStrategy(t, "token_bucket", strategies.Limit{Requests: 2, Period: strategies.Second})
	st, _ := s.Step(strategies.State{}, epoch0, lim, 2)
	for i := range int64(10) {
		next, d := s.Step(st, epoch0+i*strategies.Millisecond, lim, 1)
		if d.Allowed || next.A != st.A || next.B != st.B {
			t.Fatalf("denied step changed state %+v → %+v (%+v)", st, next, d)
		}
	}
	if _, d := s.Step(st, epoch0+500*strategies.Millisecond, lim, 1); !d.Allowed {
		t.Fatalf("refused after one refill period: %+v", d)
	}
}

// TestTokenBucketSlowRateStaysExact: one token a week refills to the
// microsecond.
func TestTokenBucketSlowRateStaysExact(t *testing.T) {
	s, lim := prepareStrategy(t, "token_bucket", strategies.Limit{Requests: 3, Period: strategies.Week})
	st, _ := s.Step(strategies.State{}, epoch0, lim, 3)
	_, d := s.Step(st, epoch0, lim, 1)
	if want := (strategies.Week + 2) / 3; d.RetryAfter != want {
		t.Fatalf("RetryAfter %d, want %d", d.RetryAfter, want)
	}
}

func TestTokenBucketPrepare(t *testing.T) {
	s, _ := strategies.Lookup("token_bucket")
	lim, err := s.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second})
	if err != nil || lim.Burst != 10 || lim.RateNum != 1 || lim.RateDen != 100000 {
		t.Fatalf("Prepare = %+v, %v; want Burst 10, rate 1/100000", lim, err)
	}
	for _, lim := range []strategies.Limit{
		{Requests: -1, Period: strategies.Second},
		{Requests: 1, Period: 0},
		{Requests: 1, Period: strategies.Second, Burst: -1},
		{Requests: 0, Period: strategies.Second, Burst: 5},
		{Requests: 1, Period: strategies.Week, Burst: 1 << 40},
	} {
		if _, err := s.Prepare(lim); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", lim, err)
		}
	}
}

func TestTokenBucketHostileInput(t *testing.T) {
	hostileSteps(t, "token_bucket", strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 20})
}

func TestTokenBucketStepDoesNotAllocate(t *testing.T) {
	requireZeroAllocs(t, "token_bucket", strategies.Limit{Requests: 100, Period: strategies.Second})
}

func BenchmarkTokenBucketStep(b *testing.B) {
	benchStrategyStep(b, "token_bucket", strategies.Limit{Requests: 100, Period: strategies.Second})
}
