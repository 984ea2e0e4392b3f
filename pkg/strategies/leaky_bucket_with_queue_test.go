package strategies_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestLeakyBucketWithQueueState checks that the state shows which
// requests are still queued and how much of the head has leaked.
func TestLeakyBucketWithQueueState(t *testing.T) {
	q := strategies.LeakyBucketWithQueue{}
	lim, err := q.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second})
	if err != nil {
		t.Fatal(err)
	}
	ms := strategies.Millisecond
	t0 := epoch0
	var st strategies.State
	for _, r := range []bucketReq{{t0, 3}, {t0 + 50*ms, 2}, {t0 + 100*ms, 4}, {t0 + 350*ms, 1}} {
		var d strategies.Decision
		if st, d = q.Step(st, r.at, lim, r.hits); !d.Allowed {
			t.Fatalf("request %+v refused: %+v", r, d)
		}
	}
	// By t0+350ms, 3.5 hits have leaked: the 3-hit head and half of the
	// 2-hit request.
	want := []strategies.Entry{{At: t0 + 50*ms, Hits: 2}, {At: t0 + 100*ms, Hits: 4}, {At: t0 + 350*ms, Hits: 1}}
	if !slices.Equal(st.Log, want) {
		t.Errorf("queue = %v, want %v", st.Log, want)
	}
	if st.A != lim.RateDen/2 || st.B != t0+350*ms || st.C != 7 {
		t.Errorf("A, B, C = %d, %d, %d; want half a hit (%d), %d, 7", st.A, st.B, st.C, lim.RateDen/2, t0+350*ms)
	}
	// Everything leaks out by t0+350ms + 650ms; the state is then empty.
	st, d := q.Step(st, t0+1000*ms, lim, 0)
	if len(st.Log) != 0 || st.A != 0 || st.B != 0 || st.C != 0 || d.Remaining != 10 || d.TTL != 0 {
		t.Errorf("after draining: state %+v, decision %+v; want empty and fresh", st, d)
	}
}

// TestLeakyBucketWithQueueKeepsPrev steps twice from the same prev, with
// spare capacity in prev.Log, and checks that neither step changes the
// entries of prev nor of the other step's result.
func TestLeakyBucketWithQueueKeepsPrev(t *testing.T) {
	q := strategies.LeakyBucketWithQueue{}
	lim, err := q.Prepare(strategies.Limit{Requests: 10, Period: strategies.Second})
	if err != nil {
		t.Fatal(err)
	}
	t0 := epoch0
	var prev strategies.State
	for i := range 4 {
		prev, _ = q.Step(prev, t0+int64(i), lim, 2)
	}
	prev.Log = slices.Grow(prev.Log, 8)
	orig := slices.Clone(prev.Log)

	// A refund that drops the tail entry, then an admission appended
	// after it: the append must not land on prev's dropped entry.
	refunded, _ := q.Step(prev, t0+10, lim, -2)
	if _, d := q.Step(refunded, t0+10, lim, 4); !d.Allowed {
		t.Fatalf("admission after refund refused: %+v", d)
	}
	// A refund that shortens an entry copies the queue first.
	if _, d := q.Step(prev, t0+10, lim, -3); !d.Allowed {
		t.Fatalf("refund refused: %+v", d)
	}
	if !slices.Equal(prev.Log, orig) {
		t.Errorf("prev.Log changed: %v, want %v", prev.Log, orig)
	}
}

// TestLeakyBucketWithQueueIsLeakyBucket compares every decision with
// leaky_bucket's over a random sequence and checks the queue's invariants.
func TestLeakyBucketWithQueueIsLeakyBucket(t *testing.T) {
	for _, base := range []strategies.Limit{
		{Requests: 10, Period: strategies.Second},
		{Requests: 7, Period: 3 * strategies.Second},
		{Requests: 25, Period: strategies.Minute},
	} {
		q, ql := prepareStrategy(t, "leaky_bucket_with_queue", base)
		lb, ll := prepareStrategy(t, "leaky_bucket", base)
		var qs, ls strategies.State
		for i, r := range bucketSeq(4, 20_000) {
			var qd, ld strategies.Decision
			qs, qd = q.Step(qs, r.at, ql, r.hits)
			ls, ld = lb.Step(ls, r.at, ll, r.hits)
			if qd != ld {
				t.Fatalf("%+v: request %d (at %d, hits %d): queue %+v, leaky_bucket %+v", base, i, r.at, r.hits, qd, ld)
			}
			var sum int64
			for _, e := range qs.Log {
				if e.Hits <= 0 {
					t.Fatalf("request %d: queued entry %+v", i, e)
				}
				sum += e.Hits
			}
			if sum != qs.C || int64(len(qs.Log)) > ql.Requests || (len(qs.Log) > 0 && qs.A >= qs.Log[0].Hits*ql.RateDen) {
				t.Fatalf("request %d: inconsistent queue %+v", i, qs)
			}
		}
	}
}

func TestLeakyBucketWithQueuePrepare(t *testing.T) {
	q := strategies.LeakyBucketWithQueue{}
	if _, err := q.Prepare(strategies.Limit{Requests: strategies.MaxQueueLimit, Period: strategies.Second}); err != nil {
		t.Errorf("requests = MaxQueueLimit: %v", err)
	}
	for _, bad := range []strategies.Limit{
		{Requests: strategies.MaxQueueLimit + 1, Period: strategies.Second},
		{Requests: 1, Period: -strategies.Second},
		{Requests: 1, Period: strategies.MaxExact / 2},
	} {
		if _, err := q.Prepare(bad); !errors.Is(err, strategies.ErrInvalidLimit) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidLimit", bad, err)
		}
	}
}

func BenchmarkLeakyBucketWithQueueStep(b *testing.B) {
	benchStrategyStep(b, "leaky_bucket_with_queue", strategies.Limit{Requests: 100, Period: strategies.Second})
}

func BenchmarkLeakyBucketWithQueueStepParallel(b *testing.B) {
	benchmarkBucketStep(b, "leaky_bucket_with_queue", strategies.Limit{Requests: 1000, Period: strategies.Second})
}
