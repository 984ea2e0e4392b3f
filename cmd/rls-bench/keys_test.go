package main

import (
	"sync"
	"testing"
)

func TestKeySpaceValues(t *testing.T) {
	ks, err := NewKeySpace(1000, DistUniform, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 1000 || ks.Value(0) != "k0" || ks.Value(999) != "k999" {
		t.Fatalf("len %d, values %q %q", ks.Len(), ks.Value(0), ks.Value(999))
	}
	for _, c := range []struct {
		n    int
		dist string
		s    float64
	}{{0, DistUniform, 0}, {10, "pareto", 0}, {10, DistZipf, 1}} {
		if _, err := NewKeySpace(c.n, c.dist, c.s); err == nil {
			t.Errorf("NewKeySpace(%d, %q, %g) accepted", c.n, c.dist, c.s)
		}
	}
}

func TestUniformCoversEvenly(t *testing.T) {
	ks, _ := NewKeySpace(10, DistUniform, 0)
	g := ks.Gen(7)
	counts := make([]int, 10)
	for range 100_000 {
		counts[g.Next()]++
	}
	for i, c := range counts {
		if c < 9_000 || c > 11_000 {
			t.Errorf("value %d drawn %d times of 100000, want about 10000", i, c)
		}
	}
	// The same seed draws the same sequence.
	a, b := ks.Gen(3), ks.Gen(3)
	for range 100 {
		if a.Next() != b.Next() {
			t.Fatal("same seed, different draws")
		}
	}
}

func TestZipfIsSkewed(t *testing.T) {
	ks, _ := NewKeySpace(1000, DistZipf, 1.1)
	g := ks.Gen(1)
	counts := make([]int, 1000)
	for range 100_000 {
		i := g.Next()
		if i < 0 || i >= 1000 {
			t.Fatalf("draw %d out of range", i)
		}
		counts[i]++
	}
	if counts[0] < counts[1] || counts[1] < counts[10] || counts[10] < counts[500] {
		t.Errorf("not decreasing with rank: %d %d %d %d", counts[0], counts[1], counts[10], counts[500])
	}
	// With s = 1.1 the hottest key takes a large share (about a quarter).
	if counts[0] < 15_000 {
		t.Errorf("hottest key drawn %d times of 100000", counts[0])
	}
}

func TestSeqDrawsEachValueOnce(t *testing.T) {
	ks, _ := NewKeySpace(10_000, DistSeq, 0)
	seen := make([]int, 10_000)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := ks.Gen(uint64(w))
			for {
				i := g.Next()
				if i < 0 {
					return
				}
				mu.Lock()
				seen[i]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("value %d drawn %d times", i, c)
		}
	}
}
