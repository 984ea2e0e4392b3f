package main

import (
	"math"
	"testing"
	"time"
)

func TestBucketBoundsContainValue(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 123456, 1 << 30, 1<<40 + 12345} {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("value %d: bucket %d spans [%d, %d]", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Errorf("value %d: bucket [%d, %d] wider than 1/%d of its start", v, lo, hi, subCount)
		}
	}
	// Buckets are contiguous and increasing.
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != 10000 || h.Min() != time.Microsecond || h.Max() != 10*time.Millisecond {
		t.Fatalf("count %d min %v max %v", h.Count(), h.Min(), h.Max())
	}
	if got, want := h.Mean(), 5000500*time.Nanosecond; got != want {
		t.Errorf("mean %v, want %v", got, want)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.9, 9 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.Quantile(c.q)
		// The bucket's upper bound: never below the exact value, at most
		// 1/64 above it.
		if got < c.want || float64(got-c.want) > float64(c.want)/subCount {
			t.Errorf("q%.3f = %v, want %v (+1/%d at most)", c.q, got, c.want, subCount)
		}
	}
	if h.Quantile(0) != time.Microsecond {
		t.Errorf("q0 = %v", h.Quantile(0))
	}
}

func TestHistogramEmptyAndMerge(t *testing.T) {
	var a, b Histogram
	if a.Quantile(0.99) != 0 || a.Mean() != 0 || a.Max() != 0 {
		t.Fatal("empty histogram reports values")
	}
	a.Record(2 * time.Millisecond)
	b.Record(time.Microsecond)
	b.Record(-time.Second) // clamped to 0
	a.Merge(&b)
	a.Merge(&Histogram{})
	if a.Count() != 3 || a.Min() != 0 || a.Max() != 2*time.Millisecond {
		t.Fatalf("merged: count %d min %v max %v", a.Count(), a.Min(), a.Max())
	}
	if got := a.Quantile(0.5); got < time.Microsecond || got > time.Microsecond+time.Microsecond/subCount {
		t.Errorf("median %v, want 1µs (+1/%d at most)", got, subCount)
	}
	// A huge value lands in the last bucket and the maximum bounds it.
	var c Histogram
	c.Record(time.Duration(math.MaxInt64))
	if c.Quantile(0.5) != time.Duration(math.MaxInt64) {
		t.Errorf("huge value: %v", c.Quantile(0.5))
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Microsecond) }); n != 0 {
		t.Errorf("Record allocates %.1f times", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * time.Nanosecond)
	}
}
