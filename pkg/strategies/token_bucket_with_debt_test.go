package strategies_test

import (
	"errors"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestTokenBucketWithDebtExceedsHasNoUnmeetableWait_TraffikDefect fails on Traffik's
// TokenBucket, which answers a cost above capacity with a wait that no
// amount of refill can meet.
func TestTokenBucketWithDebtExceedsHasNoUnmeetableWait_TraffikDefect(t *testing.T) {
	for _, lim := range []strategies.Limit{
		{Requests: 10, Period: strategies.Second},
		{Requests: 10, Period: strategies.Second, Burst: 5, MaxDebt: 3},
	} {
		s, lim := prepareStrategy(t, "token_bucket_with_debt", lim)
		capacity := lim.Burst + lim.MaxDebt
		now := epoch0
		_, d := s.Step(strategies.State{}, now, lim, capacity+1)
		if d.Allowed || !d.Exceeds || d.RetryAfter != 0 {
			t.Errorf("%+v: %d hits: %+v, want Exceeds with RetryAfter 0", lim, capacity+1, d)
		}
		if _, d = s.Step(strategies.State{}, now, lim, capacity); !d.Allowed {
			t.Errorf("%+v: %d hits on a full bucket refused: %+v", lim, capacity, d)
		}
	}
}

// TestTokenBucketWithDebtWithoutDebtIsTokenBucket compares every decision
// with token_bucket's over a random sequence when MaxDebt is 0.
func TestTokenBucketWithDebtWithoutDebtIsTokenBucket(t *testing.T) {
	for _, base := range []strategies.Limit{
		{Requests: 10, Period: strategies.Second},
		{Requests: 7, Period: 3 * strategies.Second, Burst: 4},
	} {
		debt, dl := prepareStrategy(t, "token_bucket_with_debt", base)
		tb, tl := prepareStrategy(t, "token_bucket", base)
		var ds, ts strategies.State
		for i, r := range bucketSeq(2, 20_000) {
			var dd, td strategies.Decision
			ds, dd = debt.Step(ds, r.at, dl, r.hits)
			ts, td = tb.Step(ts, r.at, tl, r.hits)
			if dd != td {
				t.Fatalf("%+v: request %d (at %d, hits %d): token_bucket_with_debt %+v, token_bucket %+v", base, i, r.at, r.hits, dd, td)
			}
		}
	}
}

// TestTokenBucketWithDebtRemainingIsAdmissible checks that Remaining, debt
// included, is exactly the number of single hits admitted next at the
// same instant.
func TestTokenBucketWithDebtRemainingIsAdmissible(t *testing.T) {
	s, lim := prepareStrategy(t, "token_bucket_with_debt", strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5, MaxDebt: 3})
	var st strategies.State
	for i, r := range bucketSeq(3, 2_000) {
		var d strategies.Decision
		st, d = s.Step(st, r.at, lim, r.hits)
		probe := st
		for k := range d.Remaining {
			var pd strategies.Decision
			if probe, pd = s.Step(probe, r.at, lim, 1); !pd.Allowed {
				t.Fatalf("request %d: Remaining %d but hit %d refused", i, d.Remaining, k+1)
			}
		}
		if _, pd := s.Step(probe, r.at, lim, 1); pd.Allowed {
			t.Fatalf("request %d: Remaining %d but one more hit admitted", i, d.Remaining)
		}
	}
}

func TestTokenBucketWithDebtPrepare(t *testing.T) {
	s := strategies.TokenBucketWithDebt{}
	lim, err := s.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second, MaxDebt: 4})
	if err != nil {
		t.Fatal(err)
	}
	if lim.Burst != 10 || lim.MaxDebt != 4 {
		t.Errorf("defaults: %+v, want burst 10 and max_debt 4", lim)
	}
	for _, bad := range []strategies.Limit{
		{Requests: 0, Period: strategies.Second, MaxDebt: 3},
		{Requests: 10, Period: strategies.Second, MaxDebt: -1},
		{Requests: 1, Period: strategies.Day, MaxDebt: 1 << 30},
		{Requests: 1, Period: strategies.Second, Burst: strategies.MaxExact, MaxDebt: strategies.MaxExact},
	} {
		if _, err := s.Prepare(bad); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", bad, err)
		}
	}
}

func BenchmarkTokenBucketWithDebtStep(b *testing.B) {
	benchStrategyStep(b, "token_bucket_with_debt", strategies.Limit{Requests: 100, Period: strategies.Second, MaxDebt: 10})
}

func BenchmarkTokenBucketWithDebtStepParallel(b *testing.B) {
	benchmarkBucketStep(b, "token_bucket_with_debt", strategies.Limit{Requests: 1000, Period: strategies.Second, Burst: 100, MaxDebt: 50})
}
