package main

import (
	"math/bits"
	"time"
)

// subBits is the number of bits of linear resolution within each power of
// two of the histogram: 2^subBits sub-buckets bound the relative error of
// a recorded value by 1/2^subBits (under 1.6%).
const subBits = 6

const (
	subCount = 1 << subBits
	// maxExp is the highest power of two tracked; larger values land in
	// the last bucket (2^(maxExp+subBits) ns is over 76 hours).
	maxExp     = 42
	numBuckets = (maxExp + 1) * subCount
)

// Histogram is a log-linear latency histogram in the manner of HDR
// histograms: values below 2^subBits nanoseconds have a bucket each, and
// every further power of two is split into 2^subBits equal buckets.
// Recording is a few arithmetic operations and one increment, with no
// allocation. The zero value is an empty histogram ready to use. A
// Histogram is not safe for concurrent use: give each worker its own and
// Merge them afterwards.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// bucketOf returns the bucket index of a value in nanoseconds (v >= 0).
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	i := (e+1)*subCount + int(v>>uint(e)) - subCount
	if i >= numBuckets {
		return numBuckets - 1
	}
	return i
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	e := i/subCount - 1
	m := uint64(i%subCount + subCount)
	lo = m << uint(e)
	hi = lo + (uint64(1) << uint(e)) - 1
	return lo, hi
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Max returns the largest observation, 0 when there is none.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean observation, 0 when there is none.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the value below which a fraction q (0 to 1) of the
// observations fall: the upper bound of the bucket holding the rank
// ceil(q·n) observation, clamped to the observed maximum, so that a
// quantile never understates a latency. It returns 0 for an empty
// histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	rank := uint64(q*float64(h.total) + 0.9999999)
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			v := int64(hi)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
