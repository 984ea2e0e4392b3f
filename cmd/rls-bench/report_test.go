package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// cell builds a cell with the given throughputs and latencies.
func cell(store string, d, n int, strat string, rps, p50, p99, ceilRPS, ceilP99 float64) Cell {
	return Cell{Store: store, Descriptors: d, Cardinality: n, Strategy: strat,
		Result:  Result{RPS: rps, P50US: p50, P99US: p99, OK: 100},
		Ceiling: Result{RPS: ceilRPS, P50US: 100, P99US: ceilP99}}
}

// sampleReport has every target measured: memory and memcached meet
// theirs, redis does not; 1M keys on redis lose 30%.
func sampleReport() *Report {
	c := DefaultMatrixConfig()
	c.Stores = []string{"memory", "redis", "memcached"}
	c.Strategies = []string{"fixed_window", "gcra"}
	rep := &Report{Machine: Machine{CPUs: 2, CPUModel: "Test CPU <x>", GoVersion: "go1.26", OS: "linux/amd64"},
		Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Command: "go run ./cmd/rls-bench matrix", Config: c, Elapsed: time.Minute,
		Memory: &MemoryResult{Keys: 1_000_000, HeapBytes: 100e6, RSSBytes: 120e6, HeapBytesPerKey: 100, RSSBytesPerKey: 120}}
	for _, s := range c.Strategies {
		for _, d := range []int{1, 3} {
			p50 := 200.0 * float64(d) / 2 // ×1.5 for ×3 descriptors: linear at most
			rep.Cells = append(rep.Cells,
				cell("memory", d, 1000, s, 9000, p50, 1100, 10000, 1000),
				cell("memory", d, 1_000_000, s, 8800, p50, 1150, 10000, 1000),
				cell("redis", d, 1000, s, 5000, p50*2, 3000, 10000, 1000),
				cell("redis", d, 1_000_000, s, 3500, p50*2, 3000, 10000, 1000),
				cell("memcached", d, 1000, s, 5500, p50*2, 3000, 10000, 1000),
				cell("memcached", d, 1_000_000, s, 5400, p50*2, 3000, 10000, 1000))
		}
	}
	for i, c := range rep.Cells {
		if c.Strategy != referenceStrategy || c.Cardinality != 1000 {
			continue
		}
		switch c.Store {
		case "redis":
			rep.Cells[i].Result.ServiceCPUUS, rep.Cells[i].Result.StoreCPUUS = 30, 10
			if c.Descriptors == 1 {
				rep.Cells[i].Result.LoadCPUUS = 50
				rep.Cells[i].Ceiling.ServiceCPUUS, rep.Cells[i].Ceiling.LoadCPUUS = 30, 40
			}
			rep.Cells[i].Reference = &Result{RPS: 2600, P99US: 4000, ServiceCPUUS: 80, StoreCPUUS: 20, LoadCPUUS: 60}
		case "memcached":
			rep.Cells[i].Reference = &Result{RPS: 5000, P99US: 4000}
		}
	}
	return rep
}

func TestCellRatiosAndID(t *testing.T) {
	c := cell("redis", 3, 1_000_000, "gcra", 5000, 100, 3000, 10000, 1000)
	if c.RPSRatio() != 0.5 || c.P99Ratio() != 3 {
		t.Errorf("ratios %v %v", c.RPSRatio(), c.P99Ratio())
	}
	if c.ID() != "redis/d3/k1M/gcra" {
		t.Errorf("id %q", c.ID())
	}
	if (Cell{}).RPSRatio() != 0 {
		t.Error("a cell without a ceiling has a ratio")
	}
	for n, want := range map[int]string{1000: "1k", 1_000_000: "1M", 1500: "1500", 2_000_000: "2M"} {
		if got := shortCount(n); got != want {
			t.Errorf("shortCount(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEvaluateTargets(t *testing.T) {
	got := map[string]Target{}
	for _, tg := range EvaluateTargets(sampleReport()) {
		got[tg.Name] = tg
	}
	want := map[string]string{
		"memory store: throughput":                Met,         // worst 0.88
		"memory store: p99 latency":               Met,         // worst 1.15
		"redis (single): throughput":              NotMet,      // worst 0.35
		"redis (single): p99 latency":             NotMet,      // 3.0
		"redis-cluster: throughput, 1 descriptor": NotMeasured, // no cells
		"memcached: throughput, 1 descriptor":     Met,         // worst 0.54
		"redis (single): against the reference":   NotMet,      // 5000 / 2600
		"redis (single): CPU per decision":        Met,         // 40 / 100
		"redis-cluster: against the reference":    NotMeasured,
		"memcached: against the reference":        Met,    // 5500 / 5000
		"key cardinality":                         NotMet, // redis 0.35 / 0.5 = 0.7
		"descriptors per request":                 Met,    // ×1.5 for ×3
		"memory per tracked key":                  Met,    // 100 bytes
	}
	if len(got) != len(want) {
		t.Fatalf("targets: %v", got)
	}
	for name, v := range want {
		if got[name].Verdict != v {
			t.Errorf("%s: %s (%s), want %s", name, got[name].Verdict, got[name].Got, v)
		}
	}
	if g := got["redis (single): throughput"].Got; !strings.Contains(g, "0.35×") || !strings.Contains(g, "redis/d1/k1M/") {
		t.Errorf("redis got %q", g)
	}
	if g := got["key cardinality"].Got; !strings.Contains(g, "0.70×") {
		t.Errorf("cardinality got %q", g)
	}

	// Beyond the limits every verdict flips; nothing measured, nothing judged.
	rep := sampleReport()
	for i := range rep.Cells {
		if rep.Cells[i].Store == "memory" && rep.Cells[i].Descriptors == 3 {
			rep.Cells[i].Result.P50US *= 3
			rep.Cells[i].Result.P99US = 1300
			rep.Cells[i].Result.RPS = 8000
		}
	}
	rep.Memory.HeapBytesPerKey = 129
	for _, tg := range EvaluateTargets(rep) {
		switch tg.Name {
		case "memory store: throughput", "memory store: p99 latency", "descriptors per request", "memory per tracked key":
			if tg.Verdict != NotMet {
				t.Errorf("%s: %s (%s), want not met", tg.Name, tg.Verdict, tg.Got)
			}
		}
	}
	empty := &Report{Config: QuickMatrixConfig()}
	for _, tg := range EvaluateTargets(empty) {
		if tg.Verdict != NotMeasured {
			t.Errorf("empty report: %s is %s", tg.Name, tg.Verdict)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	rep := sampleReport()
	rep.Problems = []string{"redis/d3/k1k/gcra: 2 errors (first: boom\nsecond line)"}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rep, "img/benchmarks.svg", "## What limits the figures\n\nnotes here"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"# Benchmarks", "go run ./cmd/rls-bench matrix", "| CPU | Test CPU <x> |", "| Go | go1.26 |",
		"2026-01-02", "![throughput ratio per store, descriptors and keys](img/benchmarks.svg)",
		"| redis (single): throughput | ≥ 0.70× ceiling rps | 0.35×", "❌ **not met**", "✅ met",
		"**Not met in this run:**", "- redis (single): throughput: the goal is ≥ 0.70× ceiling rps",
		"| memory | 3 | 1M | gcra | 8800 | 300 | 1150 | 10000 | 1000 | 0.88 | 1.15 | 0.0 | 0.0 | 0.0 | 0 | 0 |",
		"## envoy-rls against envoyproxy/ratelimit",
		"| redis | 1 | 1k | 5000 | 2600 | 1.92 | 3000 | 4000 | 40.0 (30.0 + 10.0) | 100.0 (80.0 + 20.0) | 0.40 | 50.0 / 60.0 |",
		"| redis | 3 | 1k | 5000 | 2600 | 1.92 | 3000 | 4000 | 40.0 (30.0 + 10.0) | 100.0 (80.0 + 20.0) | 0.40 | — |",
		"| redis (single): CPU per decision | ≤ 0.50× envoyproxy/ratelimit's (service + redis-server) | 0.40×",
		"| 1000000 | 95.4 MiB | 114.4 MiB | 100 | 120 |", "first: boom second line", "domain: bench", "## What limits the figures\n\nnotes here",
		"## Where the machine's CPU goes", "at 1k keys", "With 32 requests in flight",
		// ceiling 40 + 30 = 70; cell 50 + 30 + 10 = 90: CPU ratio 0.78, bound 70 / (70 + 10).
		"| redis | 1 | fixed_window | 40.0 + 30.0 = 70.0 | 50.0 + 30.0 + 10.0 = 90.0 | 0.78 | 0.50 | 0.88 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	refs, budget := 0, 0
	for _, c := range rep.Cells {
		if c.Reference != nil {
			refs++
		}
		if c.Result.LoadCPUUS > 0 {
			budget++
		}
	}
	if got := strings.Count(md, "\n| memory |") + strings.Count(md, "\n| redis |") + strings.Count(md, "\n| memcached |"); got != len(rep.Cells)+refs+budget {
		t.Errorf("%d cell rows, want %d, %d reference rows and %d CPU budget rows", got, len(rep.Cells), refs, budget)
	}

	// A report from before the load generator's CPU was recorded has no
	// budget section.
	for i := range rep.Cells {
		rep.Cells[i].Result.LoadCPUUS = 0
	}
	b.Reset()
	if err := WriteMarkdown(&b, rep, "img/benchmarks.svg", ""); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "## Where the machine's CPU goes") {
		t.Error("a report without load generator CPU has a CPU budget section")
	}
}

// xmlWellFormed decodes every token of doc.
func xmlWellFormed(t *testing.T, doc []byte) (elements map[string]int) {
	t.Helper()
	elements = map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return elements
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			elements[se.Name.Local]++
		}
	}
}

func TestWriteSVG(t *testing.T) {
	rep := sampleReport()
	rep.Cells[0].Strategy = "a<b>&c" // escaped, unknown colour
	rep.Cells[1].Result.RPS = 13000  // a ratio above 1 stretches the axis
	rep.Cells[2].Result.RPS = 90000  // a ratio of 9 (noise) does not stretch it beyond maxAxis
	var b bytes.Buffer
	if err := WriteSVG(&b, rep); err != nil {
		t.Fatal(err)
	}
	els := xmlWellFormed(t, b.Bytes())
	if els["svg"] != 1 {
		t.Fatalf("svg elements: %v", els)
	}
	// One bar per cell and per reference run, plus the background and
	// the legend's swatches (the reference has one).
	refs := 0
	for _, c := range rep.Cells {
		if c.Reference != nil {
			refs++
		}
	}
	if refs == 0 {
		t.Fatal("the sample report has no reference runs")
	}
	if want := len(rep.Cells) + refs + 1 + len(strategiesOf(rep.Cells)) + 1; els["rect"] != want {
		t.Errorf("%d rects, want %d", els["rect"], want)
	}
	if els["title"] != len(rep.Cells)+refs {
		t.Errorf("%d bar titles, want %d", els["title"], len(rep.Cells)+refs)
	}
	s := b.String()
	for _, want := range []string{"memory", "memcached", "stroke-dasharray", ">2.00<", "a&lt;b&gt;&amp;c", referenceLabel, "9.00×"} {
		if !strings.Contains(s, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	// An empty report still draws a valid (empty) chart.
	b.Reset()
	if err := WriteSVG(&b, &Report{}); err != nil {
		t.Fatal(err)
	}
	xmlWellFormed(t, b.Bytes())
}

func TestResultJSONAndText(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	c := DefaultLoadConfig()
	r := newResult(c, &h, 2*time.Second, 90, 10, 3, "boom")
	if r.RPS != 50 || r.Requests != 103 || r.P50US < 50000 || r.P99US < 99000 || r.MaxUS != 100000 {
		t.Fatalf("result %+v", r)
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"rps": 50.0, "ok": 90.0, "over_limit": 10.0, "errors": 3.0, "first_error": "boom", "target": c.Target, "descriptors": 1.0} {
		if back[k] != want {
			t.Errorf("json %s = %v, want %v", k, back[k], want)
		}
	}
	for _, k := range []string{"p50_us", "p90_us", "p99_us", "p999_us", "mean_us"} {
		if _, ok := back[k]; !ok {
			t.Errorf("json lacks %s", k)
		}
	}
	b.Reset()
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if txt := b.String(); !strings.Contains(txt, "throughput 50 req/s") || !strings.Contains(txt, "first error: boom") {
		t.Errorf("text:\n%s", txt)
	}
}

func TestCPUModel(t *testing.T) {
	if got := cpuModel(strings.NewReader("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")); got != "AMD EPYC 7B13" {
		t.Errorf("cpu model %q", got)
	}
	if got := cpuModel(strings.NewReader("")); got != "unknown" {
		t.Errorf("cpu model of nothing %q", got)
	}
}

func TestReproduceDropsJSONOutput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"matrix"}, "go run ./cmd/rls-bench matrix"},
		{[]string{"matrix", "-json", "/tmp/x.json", "-stores", "redis"}, "go run ./cmd/rls-bench matrix -stores redis"},
		{[]string{"matrix", "--json=/tmp/x.json", "-keys", "1000"}, "go run ./cmd/rls-bench matrix -keys 1000"},
		{[]string{"matrix", "-serve-args", "json"}, "go run ./cmd/rls-bench matrix -serve-args json"},
	} {
		if got := reproduce(tc.args); got != tc.want {
			t.Errorf("reproduce(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
