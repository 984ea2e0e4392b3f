package strategies_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// bucketReq is one request of a random sequence for the bucket tests.
type bucketReq struct{ at, hits int64 }

// bucketSeq returns n requests starting at 1 000 s with random gaps (some
// of them negative: a clock that goes backwards) and random hits (some 0,
// some refunds, some above any capacity used in the tests).
func bucketSeq(seed uint64, n int) []bucketReq {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]bucketReq, n)
	at := 1000 * strategies.Second
	for i := range out {
		switch k := r.IntN(20); {
		case k < 8:
			at += r.Int64N(20 * strategies.Millisecond)
		case k < 12:
			// same instant
		case k < 18:
			at += r.Int64N(400 * strategies.Millisecond)
		case k < 19:
			at -= r.Int64N(300 * strategies.Millisecond)
		default:
			at += r.Int64N(5 * strategies.Second)
		}
		var h int64
		switch k := r.IntN(20); {
		case k < 12:
			h = 1
		case k < 16:
			h = 1 + r.Int64N(6)
		case k < 17:
			h = 0
		case k < 19:
			h = -r.Int64N(4) - 1
		default:
			h = 20 + r.Int64N(10)
		}
		out[i] = bucketReq{at, h}
	}
	return out
}

// TestLeakyBucketOversizedFirstRequest_TraffikDefect fails on Traffik's
// LeakyBucket, which admits the first request of a key whatever its cost.
func TestLeakyBucketOversizedFirstRequest_TraffikDefect(t *testing.T) {
	for _, name := range []string{"leaky_bucket", "leaky_bucket_with_queue"} {
		s, lim := prepareStrategy(t, name, strategies.Limit{Requests: 10, Period: strategies.Second})
		next, d := s.Step(strategies.State{}, epoch0, lim, 11)
		want := strategies.Decision{Exceeds: true, Remaining: 10}
		if d != want {
			t.Errorf("%s: first request of 11 hits: got %+v, want %+v", name, d, want)
		}
		if next.A != 0 || next.B != 0 || next.C != 0 || len(next.Log) != 0 {
			t.Errorf("%s: a refused request changed the state: %+v", name, next)
		}
	}
}

func TestLeakyBucketPrepare(t *testing.T) {
	s := strategies.LeakyBucket{}
	lim, err := s.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 99, MaxDebt: 7})
	if err != nil {
		t.Fatal(err)
	}
	if lim.RateNum != 1 || lim.RateDen != 100_000 || lim.Burst != 99 || lim.MaxDebt != 7 {
		t.Errorf("Prepare filled %+v", lim)
	}
	for _, bad := range []strategies.Limit{
		{Requests: -1, Period: strategies.Second},
		{Requests: 1, Period: 0},
		// 1 per 2^53 µs: a hit is 2^53 units of level, beyond float64.
		{Requests: 1, Period: strategies.MaxExact},
		{Requests: 3, Period: strategies.MaxExact / 2},
	} {
		if _, err := s.Prepare(bad); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", bad, err)
		}
	}
}

// TestBucketsHostileInput: extreme hits and times neither panic nor give
// negative fields, for the four bucket strategies.
func TestBucketsHostileInput(t *testing.T) {
	hostileSteps(t, "leaky_bucket", strategies.Limit{Requests: 10, Period: strategies.Second})
	hostileSteps(t, "leaky_bucket_with_queue", strategies.Limit{Requests: 10, Period: strategies.Second})
	hostileSteps(t, "gcra", strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 20})
	hostileSteps(t, "token_bucket_with_debt", strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 6, MaxDebt: 4})
}

// TestBucketsDeniedConsumeNothing_TraffikDefect: Traffik counts the hits
// of denied requests; a refused request returns prev unchanged, so a
// client hammering a full bucket is admitted as soon as it drains.
func TestBucketsDeniedConsumeNothing_TraffikDefect(t *testing.T) {
	for _, name := range []string{"leaky_bucket", "leaky_bucket_with_queue", "gcra", "token_bucket_with_debt"} {
		s, lim := prepareStrategy(t, name, strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 10})
		var st strategies.State
		st, d := s.Step(st, epoch0, lim, 10)
		if !d.Allowed {
			t.Fatalf("%s: a full burst refused: %+v", name, d)
		}
		for i := range int64(99) {
			if _, d := s.Step(st, epoch0+i*strategies.Millisecond, lim, 1); d.Allowed {
				t.Fatalf("%s: admitted %dms into a full bucket: %+v", name, i, d)
			}
		}
		if _, d := s.Step(st, epoch0+100*strategies.Millisecond, lim, 1); !d.Allowed {
			t.Errorf("%s: refused after one hit drained: %+v", name, d)
		}
	}
}

// TestBucketsStepDoesNotAllocate: the fixed-size buckets allocate nothing.
func TestBucketsStepDoesNotAllocate(t *testing.T) {
	requireZeroAllocs(t, "leaky_bucket", strategies.Limit{Requests: 100, Period: strategies.Second})
	requireZeroAllocs(t, "gcra", strategies.Limit{Requests: 100, Period: strategies.Second, Burst: 10})
	requireZeroAllocs(t, "token_bucket_with_debt", strategies.Limit{Requests: 100, Period: strategies.Second, MaxDebt: 10})
}

// TestLeakyBucketLevelNeverAboveCapacity checks the level in the state
// against Requests after every request of a random sequence.
func TestLeakyBucketLevelNeverAboveCapacity(t *testing.T) {
	s, lim := prepareStrategy(t, "leaky_bucket", strategies.Limit{Requests: 7, Period: 3 * strategies.Second})
	var st strategies.State
	for i, r := range bucketSeq(1, 20_000) {
		st, _ = s.Step(st, r.at, lim, r.hits)
		if st.A < 0 || st.A > lim.Requests*lim.RateDen {
			t.Fatalf("request %d: level %d/%d hits above %d", i, st.A, lim.RateDen, lim.Requests)
		}
	}
}

func BenchmarkLeakyBucketStep(b *testing.B) {
	benchStrategyStep(b, "leaky_bucket", strategies.Limit{Requests: 100, Period: strategies.Second})
}

func BenchmarkLeakyBucketStepParallel(b *testing.B) {
	benchmarkBucketStep(b, "leaky_bucket", strategies.Limit{Requests: 1000, Period: strategies.Second})
}

// benchmarkBucketStep steps one key per goroutine at 1.5 times its rate,
// so that about a third of the requests are refused.
func benchmarkBucketStep(b *testing.B, name string, lim strategies.Limit) {
	s, lim := prepareStrategy(b, name, lim)
	gap := lim.Period / lim.Requests * 2 / 3
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var st strategies.State
		now := 1000 * strategies.Second
		for pb.Next() {
			now += gap
			st, _ = s.Step(st, now, lim, 1)
		}
	})
}

// TestBucketsClockSkewGainsNothing: a request whose now lies before the
// time the key's state was last updated (State.B for the four buckets)
// gets what it would get at that time, the same admission, Remaining and
// next state, with Reset, TTL and RetryAfter longer by exactly the skew.
// (An empty bucket is the zero State, which has no time: like a fresh key
// it is full at any now.)
func TestBucketsClockSkewGainsNothing(t *testing.T) {
	for _, name := range []string{"leaky_bucket", "leaky_bucket_with_queue", "gcra", "token_bucket_with_debt"} {
		s, lim := prepareStrategy(t, name, strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 6, MaxDebt: 3})
		var st strategies.State
		checked := 0
		for i, r := range bucketSeq(5, 20_000) {
			if skew := st.B - r.at; skew > 0 {
				checked++
				got, gd := s.Step(st, r.at, lim, r.hits)
				got.Log = slices.Clone(got.Log) // the next Step may append into the same array
				want, wd := s.Step(st, st.B, lim, r.hits)
				if wd.Reset > 0 {
					wd.Reset += skew
					wd.TTL += skew
				}
				if wd.RetryAfter > 0 {
					wd.RetryAfter += skew
				}
				if gd != wd || got.A != want.A || got.B != want.B || got.C != want.C || !slices.Equal(got.Log, want.Log) {
					t.Fatalf("%s: request %d (%dµs behind, hits %d): got %+v, %+v; at the state's time %+v, %+v",
						name, i, skew, r.hits, gd, got, wd, want)
				}
			}
			st, _ = s.Step(st, r.at, lim, r.hits)
		}
		if checked < 100 {
			t.Errorf("%s: only %d requests behind the state's time", name, checked)
		}
	}
}
