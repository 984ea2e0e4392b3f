package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
)

// Key distributions understood by -dist.
const (
	DistUniform = "uniform"
	DistZipf    = "zipf"
	DistSeq     = "seq"
)

// KeySpace is the set of descriptor values a load run draws from: value i
// is "k" followed by i in decimal. Values are built once, so a request
// only swaps a string pointer. A KeySpace is immutable after NewKeySpace
// and safe for concurrent use.
type KeySpace struct {
	values []string
	dist   string
	zipfS  float64
	seq    atomic.Uint64
}

// NewKeySpace builds n values drawn with dist (DistUniform, DistZipf with
// exponent zipfS > 1, or DistSeq: each value once, in order, across all
// generators).
func NewKeySpace(n int, dist string, zipfS float64) (*KeySpace, error) {
	return newKeySpace("k", n, dist, zipfS)
}

// newKeySpace is NewKeySpace with values prefix0, prefix1, ...
func newKeySpace(prefix string, n int, dist string, zipfS float64) (*KeySpace, error) {
	if n < 1 {
		return nil, fmt.Errorf("rls-bench: key cardinality must be at least 1, got %d", n)
	}
	switch dist {
	case DistUniform, DistSeq:
	case DistZipf:
		if zipfS <= 1 {
			return nil, fmt.Errorf("rls-bench: zipf exponent must be greater than 1, got %g", zipfS)
		}
	default:
		return nil, fmt.Errorf("rls-bench: unknown key distribution %q (want uniform, zipf or seq)", dist)
	}
	ks := &KeySpace{values: make([]string, n), dist: dist, zipfS: zipfS}
	buf := make([]byte, 0, 24)
	for i := range ks.values {
		buf = append(buf[:0], prefix...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		ks.values[i] = string(buf)
	}
	return ks, nil
}

// Value returns value i.
func (ks *KeySpace) Value(i int) string { return ks.values[i] }

// KeyGen draws value indexes for one worker. It is not safe for
// concurrent use: each worker owns one (DistSeq generators of one
// KeySpace share its counter, atomically).
type KeyGen struct {
	ks   *KeySpace
	rng  *rand.Rand
	zipf *rand.Zipf
	n    uint64
}

// Gen returns a generator seeded with seed.
func (ks *KeySpace) Gen(seed uint64) *KeyGen {
	g := &KeyGen{ks: ks, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), n: uint64(len(ks.values))}
	if ks.dist == DistZipf {
		g.zipf = rand.NewZipf(g.rng, ks.zipfS, 1, g.n-1)
	}
	return g
}

// Next returns the next value index, or -1 when a DistSeq space is used
// up.
func (g *KeyGen) Next() int {
	switch {
	case g.zipf != nil:
		return int(g.zipf.Uint64())
	case g.ks.dist == DistSeq:
		i := g.ks.seq.Add(1) - 1
		if i >= g.n {
			return -1
		}
		return int(i)
	default:
		return int(g.rng.Uint64N(g.n))
	}
}
