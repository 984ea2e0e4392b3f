package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

// BaselineCell holds the recorded ratios of one cell.
type BaselineCell struct {
	RPSRatio float64 `json:"rps_ratio"`
	P99Ratio float64 `json:"p99_ratio"`
	// RefRatio is the throughput over envoyproxy/ratelimit's on the same
	// store in the same run; absent when the reference did not run.
	RefRatio float64 `json:"ref_ratio,omitempty"`
}

// Baseline is what bench/baseline.json records of a quick matrix: each
// cell's ratios to its ceiling and the memory store's heap bytes per key.
type Baseline struct {
	Date            time.Time               `json:"date"`
	Machine         Machine                 `json:"machine"`
	Command         string                  `json:"command"`
	Cells           map[string]BaselineCell `json:"cells"`
	HeapBytesPerKey float64                 `json:"heap_bytes_per_key,omitempty"`
}

// BaselineOf extracts the baseline figures of a report.
func BaselineOf(rep *Report) Baseline {
	b := Baseline{Date: rep.Date, Machine: rep.Machine, Command: rep.Command, Cells: map[string]BaselineCell{}}
	for _, c := range rep.Cells {
		b.Cells[c.ID()] = BaselineCell{RPSRatio: round3(c.RPSRatio()), P99Ratio: round3(c.P99Ratio()), RefRatio: round3(c.RefRatio())}
	}
	if rep.Memory != nil {
		b.HeapBytesPerKey = round3(rep.Memory.HeapBytesPerKey)
	}
	return b
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// ReadBaseline reads a baseline file.
func ReadBaseline(path string) (Baseline, error) {
	var b Baseline
	data, err := os.ReadFile(path)
	if err != nil {
		return b, fmt.Errorf("rls-bench: read baseline: %w", err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("rls-bench: parse baseline %s: %w", path, err)
	}
	return b, nil
}

// WriteBaseline writes b as indented JSON.
func WriteBaseline(w io.Writer, b Baseline) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return fmt.Errorf("rls-bench: write baseline: %w", err)
	}
	return nil
}

// Margins say how much worse than the baseline a figure may get before
// it counts as a regression, as fractions of the baseline value. A zero
// margin field disables that comparison.
type Margins struct {
	// RPS: a throughput ratio below baseline·(1−RPS) regresses.
	RPS float64
	// P99: a p99 ratio above baseline·(1+P99) regresses.
	P99 float64
	// Memory: heap bytes per key above baseline·(1+Memory) regress.
	Memory float64
}

// Comparison is one figure compared with its baseline.
type Comparison struct {
	Cell      string
	Figure    string
	Baseline  float64
	Current   float64
	Regressed bool
	// Missing is set when the current run has no such figure.
	Missing bool
}

// String describes the comparison on one line.
func (c Comparison) String() string {
	mark := "ok"
	switch {
	case c.Missing:
		mark = "MISSING"
	case c.Regressed:
		mark = "REGRESSED"
	}
	return fmt.Sprintf("%-9s %-36s %-10s baseline %8.3f  now %8.3f", mark, c.Cell, c.Figure, c.Baseline, c.Current)
}

// Compare compares cur with base figure by figure, in cell order. A cell
// of the baseline missing from cur is a regression (the run lost it); a
// cell new in cur is not compared.
func Compare(base, cur Baseline, m Margins) []Comparison {
	ids := make([]string, 0, len(base.Cells))
	for id := range base.Cells {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Comparison
	for _, id := range ids {
		b := base.Cells[id]
		c, ok := cur.Cells[id]
		if m.RPS > 0 {
			out = append(out, Comparison{Cell: id, Figure: "rps ratio", Baseline: b.RPSRatio, Current: c.RPSRatio,
				Missing: !ok, Regressed: !ok || c.RPSRatio < b.RPSRatio*(1-m.RPS)})
		}
		if m.RPS > 0 && b.RefRatio > 0 {
			// Against the reference: the same margin as the ceiling ratio.
			out = append(out, Comparison{Cell: id, Figure: "ref ratio", Baseline: b.RefRatio, Current: c.RefRatio,
				Missing: !ok || c.RefRatio == 0, Regressed: !ok || c.RefRatio < b.RefRatio*(1-m.RPS)})
		}
		if m.P99 > 0 {
			out = append(out, Comparison{Cell: id, Figure: "p99 ratio", Baseline: b.P99Ratio, Current: c.P99Ratio,
				Missing: !ok, Regressed: !ok || c.P99Ratio > b.P99Ratio*(1+m.P99)})
		}
	}
	if m.Memory > 0 && base.HeapBytesPerKey > 0 {
		missing := cur.HeapBytesPerKey == 0
		out = append(out, Comparison{Cell: "memory store", Figure: "bytes/key", Baseline: base.HeapBytesPerKey, Current: cur.HeapBytesPerKey,
			Missing: missing, Regressed: missing || cur.HeapBytesPerKey > base.HeapBytesPerKey*(1+m.Memory)})
	}
	return out
}

// Regressions returns the comparisons that regressed.
func Regressions(cs []Comparison) []Comparison {
	var out []Comparison
	for _, c := range cs {
		if c.Regressed {
			out = append(out, c)
		}
	}
	return out
}
