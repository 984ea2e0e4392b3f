package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestBaselineRoundTripAndCompare(t *testing.T) {
	rep := sampleReport()
	base := BaselineOf(rep)
	if len(base.Cells) != len(rep.Cells) || base.HeapBytesPerKey != 100 {
		t.Fatalf("baseline: %d cells, %v bytes/key", len(base.Cells), base.HeapBytesPerKey)
	}
	if got := base.Cells["redis/d1/k1k/gcra"]; got.RPSRatio != 0.5 || got.P99Ratio != 3 {
		t.Errorf("redis cell %+v", got)
	}
	path := filepath.Join(t.TempDir(), "baseline.json")
	var b bytes.Buffer
	if err := WriteBaseline(&b, base); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := ReadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	m := Margins{RPS: 0.15, P99: 0.5, Memory: 0.15}
	cs := Compare(base, back, m)
	refs := 0
	for _, c := range base.Cells {
		if c.RefRatio > 0 {
			refs++
		}
	}
	if refs == 0 {
		t.Fatal("the sample baseline has no reference ratio")
	}
	if want := 2*len(base.Cells) + refs + 1; len(cs) != want {
		t.Fatalf("%d comparisons, want %d", len(cs), want)
	}
	if r := Regressions(cs); len(r) != 0 {
		t.Fatalf("identical runs regress: %v", r)
	}

	cur := BaselineOf(rep)
	cur.Cells["redis/d1/k1k/gcra"] = BaselineCell{RPSRatio: 0.43, P99Ratio: 3}    // 14% down: within the margin
	cur.Cells["memory/d1/k1k/gcra"] = BaselineCell{RPSRatio: 0.76, P99Ratio: 1.1} // 16% down: regressed
	cur.Cells["memcached/d1/k1k/gcra"] = BaselineCell{RPSRatio: 0.55, P99Ratio: 4.6}
	rc := cur.Cells["redis/d1/k1k/fixed_window"]
	rc.RefRatio *= 0.8 // 20% down against the reference: regressed
	cur.Cells["redis/d1/k1k/fixed_window"] = rc
	mc := cur.Cells["memcached/d3/k1k/fixed_window"]
	mc.RefRatio = 0 // the reference did not run: missing
	cur.Cells["memcached/d3/k1k/fixed_window"] = mc
	delete(cur.Cells, "redis/d3/k1M/gcra")
	cur.Cells["new/d1/k1k/gcra"] = BaselineCell{RPSRatio: 0.1}
	cur.HeapBytesPerKey = 116
	got := map[string]bool{}
	for _, c := range Regressions(Compare(base, cur, m)) {
		got[c.Cell+" "+c.Figure] = true
	}
	want := map[string]bool{
		"memory/d1/k1k/gcra rps ratio":            true,
		"memcached/d1/k1k/gcra p99 ratio":         true,
		"redis/d3/k1M/gcra rps ratio":             true,
		"redis/d3/k1M/gcra p99 ratio":             true,
		"memory store bytes/key":                  true,
		"redis/d1/k1k/fixed_window ref ratio":     true,
		"memcached/d3/k1k/fixed_window ref ratio": true,
	}
	if len(got) != len(want) {
		t.Errorf("regressions %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing regression %s (got %v)", k, got)
		}
	}
	// Zero margins switch comparisons off.
	if cs := Compare(base, cur, Margins{RPS: 0.15}); len(cs) != len(base.Cells)+refs {
		t.Errorf("rps only: %d comparisons", len(cs))
	}
	if _, err := ReadBaseline(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("a missing baseline read")
	}
}
