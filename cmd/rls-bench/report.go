package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
)

// Machine describes where a report was measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// DescribeMachine reads the machine's description: the CPUs this process
// may use, the CPU model from /proc/cpuinfo (when there is one) and the
// Go toolchain this program was built with (the one that builds
// envoy-rls).
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUModel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		m.CPUModel = cpuModel(f)
	}
	return m
}

// cpuModel returns the first "model name" of a /proc/cpuinfo text.
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// Target verdicts.
const (
	Met         = "met"
	NotMet      = "not met"
	NotMeasured = "not measured"
)

// Target is one goal of the "Performance" issue judged on a report.
type Target struct {
	Name    string `json:"name"`
	Goal    string `json:"goal"`
	Got     string `json:"got"`
	Verdict string `json:"verdict"`
}

// worst returns the cell minimising (or, with highest, maximising) f, and
// whether there was one.
func worst(cells []Cell, keep func(Cell) bool, f func(Cell) float64, highest bool) (Cell, float64, bool) {
	var best Cell
	bv, found := 0.0, false
	for _, c := range cells {
		if !keep(c) {
			continue
		}
		v := f(c)
		if !found || (highest && v > bv) || (!highest && v < bv) {
			best, bv, found = c, v, true
		}
	}
	return best, bv, found
}

func verdict(ok bool) string {
	if ok {
		return Met
	}
	return NotMet
}

// pairRatio is one comparison of two cells that differ in one dimension.
type pairRatio struct {
	a, b Cell
	v    float64
}

// pairs matches each cell kept by isA with the cell kept by isB that
// agrees with it on same, and returns f of each pair.
func pairs(cells []Cell, isA, isB func(Cell) bool, same func(a, b Cell) bool, f func(a, b Cell) float64) []pairRatio {
	var out []pairRatio
	for _, a := range cells {
		if !isA(a) {
			continue
		}
		for _, b := range cells {
			if isB(b) && same(a, b) {
				out = append(out, pairRatio{a, b, f(a, b)})
			}
		}
	}
	return out
}

// EvaluateTargets judges the targets on rep's cells: each
// store's worst cell for the per-store goals, the worst pair for the
// scaling goals.
func EvaluateTargets(rep *Report) []Target {
	var ts []Target
	store := func(s string) func(Cell) bool { return func(c Cell) bool { return c.Store == s } }
	floor := func(s, label string, want float64) {
		t := Target{Name: label + ": throughput", Goal: fmt.Sprintf("≥ %.2f× ceiling rps", want), Verdict: NotMeasured, Got: "—"}
		if c, v, ok := worst(rep.Cells, store(s), Cell.RPSRatio, false); ok {
			t.Got, t.Verdict = fmt.Sprintf("%.2f× (worst cell: %s)", v, c.ID()), verdict(v >= want)
		}
		ts = append(ts, t)
	}
	floor("memory", "memory store", 0.85)
	t := Target{Name: "memory store: p99 latency", Goal: "≤ 1.20× ceiling p99", Verdict: NotMeasured, Got: "—"}
	if c, v, ok := worst(rep.Cells, store("memory"), Cell.P99Ratio, true); ok {
		t.Got, t.Verdict = fmt.Sprintf("%.2f× (worst cell: %s)", v, c.ID()), verdict(v <= 1.2)
	}
	ts = append(ts, t)
	floor("redis", "redis (single)", 0.7)
	t = Target{Name: "redis (single): p99 latency", Goal: "≤ 1.20× ceiling p99", Verdict: NotMeasured, Got: "—"}
	if c, v, ok := worst(rep.Cells, store("redis"), Cell.P99Ratio, true); ok {
		t.Got, t.Verdict = fmt.Sprintf("%.2f× (worst cell: %s)", v, c.ID()), verdict(v <= 1.2)
	}
	ts = append(ts, t)
	d1floor := func(s, label string, want float64) {
		t := Target{Name: label + ": throughput, 1 descriptor", Goal: fmt.Sprintf("≥ %.2f× ceiling rps", want), Verdict: NotMeasured, Got: "—"}
		keep := func(c Cell) bool { return c.Store == s && c.Descriptors == 1 }
		if c, v, ok := worst(rep.Cells, keep, Cell.RPSRatio, false); ok {
			t.Got, t.Verdict = fmt.Sprintf("%.2f× (worst cell: %s)", v, c.ID()), verdict(v >= want)
		}
		ts = append(ts, t)
	}
	d1floor("redis-cluster", "redis-cluster", 0.5)
	d1floor("memcached", "memcached", 0.5)

	// Against the reference (envoyproxy/ratelimit) on the same store, in
	// the same run: throughput, and CPU per decision (service and store).
	hasRef := func(s string) func(Cell) bool {
		return func(c Cell) bool { return c.Store == s && c.Reference != nil }
	}
	vsRef := func(s, label string, want float64) {
		t := Target{Name: label + ": against the reference", Goal: fmt.Sprintf("≥ %.2f× envoyproxy/ratelimit's rps", want), Verdict: NotMeasured, Got: "—"}
		if c, v, ok := worst(rep.Cells, hasRef(s), Cell.RefRatio, false); ok {
			t.Got, t.Verdict = fmt.Sprintf("%.2f× (worst cell: %s)", v, c.ID()), verdict(v >= want)
		}
		ts = append(ts, t)
	}
	vsRef("redis", "redis (single)", 2.0)
	t = Target{Name: "redis (single): CPU per decision", Goal: "≤ 0.50× envoyproxy/ratelimit's (service + redis-server)", Verdict: NotMeasured, Got: "—"}
	cpuKnown := func(c Cell) bool {
		return c.Store == "redis" && c.Reference != nil && c.Result.CPUPerDecision() > 0 && c.Reference.CPUPerDecision() > 0
	}
	if c, v, ok := worst(rep.Cells, cpuKnown, Cell.CPURatio, true); ok {
		t.Got = fmt.Sprintf("%.2f× (worst cell: %s, %.0f µs against %.0f µs)", v, c.ID(), c.Result.CPUPerDecision(), c.Reference.CPUPerDecision())
		t.Verdict = verdict(v <= 0.5)
	}
	ts = append(ts, t)
	vsRef("redis-cluster", "redis-cluster", 1.0)
	vsRef("memcached", "memcached", 1.0)

	// 1M keys against 1k keys: throughput ratios (each over its own
	// ceiling, which cancels the drift of a shared machine).
	lo, hi := minMax(rep.Config.Cardinalities)
	t = Target{Name: "key cardinality", Goal: "1M keys within 20% of 1k keys (throughput ratio)", Verdict: NotMeasured, Got: "—"}
	if lo != hi {
		t.Goal = fmt.Sprintf("%s keys within 20%% of %s keys (throughput ratio)", shortCount(hi), shortCount(lo))
		ps := pairs(rep.Cells, func(c Cell) bool { return c.Cardinality == hi }, func(c Cell) bool { return c.Cardinality == lo },
			func(a, b Cell) bool {
				return a.Store == b.Store && a.Descriptors == b.Descriptors && a.Strategy == b.Strategy
			},
			func(a, b Cell) float64 { return ratio(a.RPSRatio(), b.RPSRatio()) })
		if p, ok := worstPair(ps, false); ok {
			t.Got, t.Verdict = fmt.Sprintf("%.2f× of %s (worst: %s)", p.v, shortCount(lo), p.a.ID()), verdict(p.v >= 0.8)
		}
	}
	ts = append(ts, t)

	// Latency against descriptors: p50 with the most descriptors over
	// p50 with the fewest must not exceed the ratio of their counts.
	dlo, dhi := minMax(rep.Config.Descriptors)
	t = Target{Name: "descriptors per request", Goal: "latency at most linear in descriptors (p50)", Verdict: NotMeasured, Got: "—"}
	if dlo != dhi && dlo > 0 {
		limit := float64(dhi) / float64(dlo)
		ps := pairs(rep.Cells, func(c Cell) bool { return c.Descriptors == dhi }, func(c Cell) bool { return c.Descriptors == dlo },
			func(a, b Cell) bool {
				return a.Store == b.Store && a.Cardinality == b.Cardinality && a.Strategy == b.Strategy
			},
			func(a, b Cell) float64 { return ratio(a.Result.P50US, b.Result.P50US) })
		if p, ok := worstPair(ps, true); ok {
			t.Got = fmt.Sprintf("p50 ×%.2f for ×%.0f descriptors (worst: %s)", p.v, limit, p.a.ID())
			t.Verdict = verdict(p.v <= limit)
		}
	}
	ts = append(ts, t)

	t = Target{Name: "memory per tracked key", Goal: "≤ 128 bytes (heap, after GC)", Verdict: NotMeasured, Got: "—"}
	if m := rep.Memory; m != nil {
		t.Got = fmt.Sprintf("%.0f bytes heap, %.0f bytes RSS (%d keys)", m.HeapBytesPerKey, m.RSSBytesPerKey, m.Keys)
		t.Verdict = verdict(m.HeapBytesPerKey <= 128)
	}
	return append(ts, t)
}

func worstPair(ps []pairRatio, highest bool) (pairRatio, bool) {
	if len(ps) == 0 {
		return pairRatio{}, false
	}
	w := ps[0]
	for _, p := range ps[1:] {
		if (highest && p.v > w.v) || (!highest && p.v < w.v) {
			w = p
		}
	}
	return w, true
}

func minMax(xs []int) (int, int) {
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// WriteMarkdown writes the report as docs/benchmarks.md; svgPath is the
// chart's path relative to the document, and notes (Markdown, may be
// empty) the hand-kept analysis of the figures, included after the
// targets.
func WriteMarkdown(w io.Writer, rep *Report, svgPath, notes string) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	c := rep.Config
	p("# Benchmarks\n\n")
	p("Generated by `rls-bench matrix` on %s; do not edit by hand.", rep.Date.Format("2006-01-02 15:04 MST"))
	if c.Quick {
		p(" This is the trimmed `-quick` matrix.")
	}
	p("\n\n")
	p("Every figure is a closed-loop gRPC load (`rls-bench load`: %d requests in flight over %d connections, "+
		"%s measured after %s of warm-up, %s keys) on `ShouldRateLimit`, and is compared with a **ceiling**: "+
		"the same load, measured right before, against `rls-bench noop`, a server on the same gRPC stack and options "+
		"that answers OK at once. A throughput ratio of 0.80 means 80%% of the no-op server's requests per second; "+
		"a p99 ratio of 1.50 means a p99 latency 1.5 times the no-op server's.\n\n",
		c.Concurrency, c.Connections, c.Duration, c.Warmup, c.Dist)
	p("## Reproduce\n\nThis report came from:\n\n```sh\n%s\n```\n\n", rep.Command)
	p("`make bench` runs the full matrix (`go run ./cmd/rls-bench matrix`) and rewrites this file and its chart; ")
	p("`make bench-check` runs the quick matrix against `bench/baseline.json`. ")
	p("Longer runs: `-duration` and `-warmup`; `go run ./cmd/rls-bench matrix -h` lists every flag. ")
	p("Redis (`redis-server`, `redis-cli`) and `memcached` must be installed: `make test-deps`.\n\n")
	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPUs (Go's NumCPU) | %d |\n| CPU | %s |\n| Go | %s |\n| OS | %s |\n| date | %s |\n| run time | %s |\n\n",
		rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.GoVersion, rep.Machine.OS, rep.Date.Format("2006-01-02 15:04:05 MST"), rep.Elapsed.Round(1e9))
	p("The load generator, the no-op server, envoy-rls and the store share these CPUs, so absolute figures are " +
		"those of a crowded machine; the ratios are what to compare.")
	noisy := 0
	for _, cell := range rep.Cells {
		if cell.RPSRatio() > 1.05 {
			noisy++
		}
	}
	if noisy > 0 {
		p(" **%d of %d cells measured more than 1.05× their ceiling**: no server does more than nothing, so this is the noise "+
			"of this run (other work on the same CPUs between a ceiling and its cell); read ratios near 1 as \"at the ceiling, within noise\" "+
			"and repeat with a longer `-duration` on a quiet machine before drawing conclusions from a single cell.", noisy, len(rep.Cells))
	}
	p("\n\n")

	targets := EvaluateTargets(rep)
	p("## Targets\n\n| target | goal | this run | verdict |\n|---|---|---|---|\n")
	var missed []Target
	for _, t := range targets {
		v := t.Verdict
		switch v {
		case Met:
			v = "✅ met"
		case NotMet:
			v = "❌ **not met**"
			missed = append(missed, t)
		}
		p("| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Got, v)
	}
	p("\n")
	if len(missed) == 0 {
		p("Every measured target is met in this run.\n\n")
	} else {
		p("**Not met in this run:**\n\n")
		for _, t := range missed {
			p("- %s: the goal is %s; this run measured %s.\n", t.Name, t.Goal, t.Got)
		}
		p("\n")
	}
	p("Per-store goals are judged on the store's worst cell. The key-cardinality goal compares each %s-key cell's "+
		"throughput ratio with the same cell at %s keys; the descriptor goal compares p50 latency at %d and %d descriptors.\n\n",
		shortCount(maxOf(c.Cardinalities)), shortCount(minOf(c.Cardinalities)), maxOf(c.Descriptors), minOf(c.Descriptors))
	if notes = strings.TrimSpace(notes); notes != "" {
		p("%s\n\n", notes)
	}
	if len(rep.Problems) > 0 {
		p("## Problems seen in this run\n\n")
		for _, pr := range rep.Problems {
			p("- %s\n", strings.ReplaceAll(strings.TrimSpace(pr), "\n", " "))
		}
		p("\n")
	}
	writeReferenceTable(p, rep)
	writeBudgetTable(p, rep)
	p("## Throughput against the ceiling\n\n![throughput ratio per store, descriptors and keys](%s)\n\n", svgPath)
	p("## All cells\n\n")
	p("CPU columns are microseconds of CPU time (user and system, from `/proc/PID/stat`) per request during the measured part: envoy-rls's own, its store's servers' (all nodes), and the no-op server's for the ceiling.\n\n")
	p("| store | descriptors | keys | strategy | req/s | p50 µs | p99 µs | ceiling req/s | ceiling p99 µs | rps ratio | p99 ratio | CPU µs/req | store CPU µs/req | ceiling CPU µs/req | over | errors |\n")
	p("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, cell := range rep.Cells {
		r := cell.Result
		p("| %s | %d | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %d | %d |\n",
			cell.Store, cell.Descriptors, shortCount(cell.Cardinality), cell.Strategy, r.RPS, r.P50US, r.P99US,
			cell.Ceiling.RPS, cell.Ceiling.P99US, cell.RPSRatio(), cell.P99Ratio(), r.ServiceCPUUS, r.StoreCPUUS, cell.Ceiling.ServiceCPUUS, r.Over, r.Errors)
	}
	p("\n")
	if m := rep.Memory; m != nil {
		p("## Memory per tracked key (memory store)\n\n")
		p("envoy-rls on the memory store was sent %d distinct fixed_window keys (8 descriptors per request, each value once). "+
			"`go_memstats_heap_inuse_bytes` and `process_resident_memory_bytes` were read from `/metrics` before and after, "+
			"each after a forced GC (`/debug/pprof/heap?gc=1`); `envoy_rls_memory_store_keys` counted the keys.\n\n", m.Keys)
		p("| keys | heap Δ | RSS Δ | heap bytes/key | RSS bytes/key |\n|--:|--:|--:|--:|--:|\n")
		p("| %d | %.1f MiB | %.1f MiB | %.0f | %.0f |\n\n", m.Keys, m.HeapBytes/(1<<20), m.RSSBytes/(1<<20), m.HeapBytesPerKey, m.RSSBytesPerKey)
	}
	p("## How the matrix is built\n\n")
	p("- Stores: %s. Redis and memcached run on loopback (redis-cluster: three masters, no replicas); envoy-rls runs with its default flags plus the store's (`--memory-max-keys 4000000` for the memory store)", strings.Join(c.Stores, ", "))
	if len(c.ServeArgs) > 0 {
		p(" and `%s`", strings.Join(c.ServeArgs, " "))
	}
	p(".")
	if len(c.ServiceEnv) > 0 {
		p(" envoy-rls, the no-op server and the reference ran with `%s` added to their environment; the load generator without.", strings.Join(c.ServiceEnv, " "))
	}
	if contains(c.ServeArgs, "--store-timeout") {
		p(" The longer store timeout keeps round trips of a saturated run (load generator, servers and store on the same CPUs) from tripping the circuit breaker: the matrix measures capacity, not the failure mode.")
	}
	p("\n")
	p("- Descriptor j of a request has one entry, `<strategy>_<j mod 3>: k<i>`, with i drawn (%s) from the key cardinality on its own, so a request with 3 descriptors touches 3 store keys.\n", c.Dist)
	if c.Repeats > 1 {
		p("- Each cell ran %d (ceiling, cell) pairs; the pair with the median throughput ratio is reported.\n", c.Repeats)
	}
	if c.CeilingPerCell {
		p("- Each cell's ceiling is measured right before it, so that the pair sees the same state of a shared machine. Keys stay in the store between cells (the limits' periods are long).\n")
	} else {
		p("- Each (store, descriptors, keys) group starts with its ceiling run; the strategies follow. Keys stay in the store between cells (the limits' periods are long).\n")
	}
	p("- A %s run of %s sends far fewer requests than a million, so the %s-key cells mostly create keys while the %s-key cells update them: the comparison is between insertion into a growing store and updates of a hot one.\n\n",
		c.Dist, c.Duration, shortCount(maxOf(c.Cardinalities)), shortCount(minOf(c.Cardinalities)))
	p("The rules file:\n\n```yaml\n%s```\n", benchRules)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeReferenceTable writes the section that compares envoy-rls with
// envoyproxy/ratelimit, when the report has reference runs.
func writeReferenceTable(p func(string, ...any), rep *Report) {
	cells := slices.DeleteFunc(slices.Clone(rep.Cells), func(c Cell) bool { return c.Reference == nil })
	if len(cells) == 0 {
		return
	}
	p("## envoy-rls against envoyproxy/ratelimit\n\n")
	p("The reference rate-limit service (envoyproxy/ratelimit, installed at a pinned version by `bench/ensure-ratelimit.sh`) ran with its defaults on the same store, " +
		"configured through its environment variables (`BACKEND_TYPE`, `REDIS_URL`, `REDIS_TYPE`, `MEMCACHE_HOST_PORT`, `USE_STATSD=false`, loopback ports) with the same fixed_window rules, " +
		"and took the same load (the same keys in the same order) right after envoy-rls in each cell. " +
		"`× ref` is envoy-rls's throughput over the reference's; CPU is µs of CPU time per request, the service's plus its store's servers', from `/proc/PID/stat`; " +
		"`CPU ×` is envoy-rls's total over the reference's (lower is better). " +
		"The load generator's own CPU per request (envoy-rls's run / the reference's) is on top of both, on the same CPUs: " +
		"the throughput ratio follows the whole machine's CPU per request, that CPU included, so it is nearer 1 than the inverse of `CPU ×`.\n\n")
	p("| store | descriptors | keys | envoy-rls req/s | reference req/s | × ref | envoy-rls p99 µs | reference p99 µs | envoy-rls CPU µs/req (service + store) | reference CPU µs/req (service + store) | CPU × | load generator µs/req |\n")
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, c := range cells {
		r, f := c.Result, *c.Reference
		lg := "—"
		if r.LoadCPUUS > 0 && f.LoadCPUUS > 0 {
			lg = fmt.Sprintf("%.1f / %.1f", r.LoadCPUUS, f.LoadCPUUS)
		}
		p("| %s | %d | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.1f (%.1f + %.1f) | %.1f (%.1f + %.1f) | %.2f | %s |\n",
			c.Store, c.Descriptors, shortCount(c.Cardinality), r.RPS, f.RPS, c.RefRatio(), r.P99US, f.P99US,
			r.CPUPerDecision(), r.ServiceCPUUS, r.StoreCPUUS, f.CPUPerDecision(), f.ServiceCPUUS, f.StoreCPUUS, c.CPURatio(), lg)
	}
	p("\n")
}

// writeBudgetTable writes the section that splits each cell's CPU per
// request between the load generator, the service and the store, for the
// cells at the fewest keys, when the report has those figures (reports
// written before they were recorded do not).
func writeBudgetTable(p func(string, ...any), rep *Report) {
	fewest := minOf(rep.Config.Cardinalities)
	cells := slices.DeleteFunc(slices.Clone(rep.Cells), func(c Cell) bool {
		return c.Cardinality != fewest || c.Result.LoadCPUUS <= 0 || c.Ceiling.LoadCPUUS <= 0
	})
	if len(cells) == 0 {
		return
	}
	p("## Where the machine's CPU goes\n\n")
	p("The load generator, the service and the store share the machine's CPUs, and a closed-loop load keeps them busy, so a cell's throughput "+
		"is close to the CPUs' time divided by the CPU time a request costs all of them together; the load generator's own share is often the largest. "+
		"This table splits that cost (µs of CPU time per request from `/proc/PID/stat`, at %s keys). `CPU ratio` is the ceiling's total over the cell's, "+
		"which the throughput ratio (`rps ratio`) follows. `bound` is the throughput ratio a service that cost no more CPU than the no-op server "+
		"would reach with the same store CPU: the ceiling's total over that total plus the store's CPU. "+
		"With %d requests in flight a request's mean latency is the number in flight over the throughput (Little's law), "+
		"so a cell's latency ratio to the ceiling is close to the inverse of its throughput ratio.\n\n", shortCount(fewest), rep.Config.Concurrency)
	p("| store | descriptors | strategy | ceiling: load + no-op = total | cell: load + envoy-rls + store = total | CPU ratio | rps ratio | bound |\n")
	p("|---|--:|---|--:|--:|--:|--:|--:|\n")
	for _, c := range cells {
		r, k := c.Result, c.Ceiling
		ceil := k.LoadCPUUS + k.ServiceCPUUS
		total := r.LoadCPUUS + r.ServiceCPUUS + r.StoreCPUUS
		p("| %s | %d | %s | %.1f + %.1f = %.1f | %.1f + %.1f + %.1f = %.1f | %.2f | %.2f | %.2f |\n",
			c.Store, c.Descriptors, c.Strategy, k.LoadCPUUS, k.ServiceCPUUS, ceil, r.LoadCPUUS, r.ServiceCPUUS, r.StoreCPUUS, total,
			ratio(ceil, total), c.RPSRatio(), ratio(ceil, ceil+r.StoreCPUUS))
	}
	p("\n")
}

func maxOf(xs []int) int { _, hi := minMax(xs); return hi }
func minOf(xs []int) int { lo, _ := minMax(xs); return lo }

// strategyColors are the bar colours of the chart, by strategy.
var strategyColors = map[string]string{
	"fixed_window": "#4c78a8", "token_bucket": "#f58518", "gcra": "#54a24b",
	"sliding_window_counter": "#b279a2", "sliding_window_log": "#e45756",
	"leaky_bucket": "#72b7b2", "leaky_bucket_with_queue": "#9d755d", "token_bucket_with_debt": "#bab0ac",
}

// storeTargets are the throughput goals drawn on the chart.
var storeTargets = map[string]float64{"memory": 0.85, "redis": 0.7, "redis-cluster": 0.5, "memcached": 0.5}

// maxAxis is the highest ratio the chart's axis shows.
const maxAxis = 2.0

// referenceColor is the colour of the reference's bars on the chart.
const referenceColor = "#9e9e9e"

// referenceLabel names the reference's bars on the chart.
const referenceLabel = "envoyproxy/ratelimit (fixed_window)"

// WriteSVG draws the throughput ratio of every cell as a bar, grouped by
// store, then descriptors and keys, one colour per strategy, with the
// ceiling (1.0) and each store's goal as lines.
func WriteSVG(w io.Writer, rep *Report) error {
	const (
		left, right, top, bottom = 56.0, 16.0, 64.0, 64.0
		plotH                    = 300.0
		barW, barGap             = 12.0, 2.0
		groupGap, storeGap       = 10.0, 26.0
	)
	// Order: stores as run, then descriptors, keys and strategies as
	// configured.
	type bar struct {
		v     float64
		color string
		title string
	}
	type group struct {
		store    string
		d, n     int
		bars     []bar
		x0, x1   float64
		newStore bool
	}
	hasRef := false
	var groups []*group
	index := map[string]*group{}
	maxV := 1.0
	for _, c := range rep.Cells {
		k := fmt.Sprintf("%s/%d/%d", c.Store, c.Descriptors, c.Cardinality)
		g := index[k]
		if g == nil {
			g = &group{store: c.Store, d: c.Descriptors, n: c.Cardinality}
			index[k] = g
			groups = append(groups, g)
		}
		v := c.RPSRatio()
		g.bars = append(g.bars, bar{v, colorOf(c.Strategy), fmt.Sprintf("%s: %.2f× (%.0f req/s, p99 %.0f µs)", c.ID(), v, c.Result.RPS, c.Result.P99US)})
		maxV = math.Max(maxV, v)
		if r := c.Reference; r != nil {
			hasRef = true
			v := ratio(r.RPS, c.Ceiling.RPS)
			g.bars = append(g.bars, bar{v, referenceColor, fmt.Sprintf("%s, envoyproxy/ratelimit: %.2f× (%.0f req/s, p99 %.0f µs)", c.ID(), v, r.RPS, r.P99US)})
			maxV = math.Max(maxV, v)
		}
	}
	// A cell far above its ceiling is noise (see WriteMarkdown); the axis
	// stops at maxAxis so that it does not flatten every other bar, and
	// such a bar is drawn to the top, its value in its title.
	maxV = math.Min(math.Ceil(maxV*4)/4, maxAxis)
	x := left + storeGap/2
	for i, g := range groups {
		if i > 0 {
			if g.store != groups[i-1].store {
				x += storeGap
				g.newStore = true
			} else {
				x += groupGap
			}
		} else {
			g.newStore = true
		}
		g.x0 = x
		x += float64(len(g.bars))*(barW+barGap) - barGap
		g.x1 = x
	}
	width := math.Max(x+storeGap/2+right, 480)
	height := top + plotH + bottom
	y := func(v float64) float64 { return top + plotH*(1-v/maxV) }

	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	esc := func(s string) string {
		var sb strings.Builder
		_ = xml.EscapeText(&sb, []byte(s)) // writing to a strings.Builder cannot fail
		return sb.String()
	}
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="%.0f" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc("envoy-rls throughput as a share of the no-op ceiling (higher is better)"))
	p(`<text x="%.0f" y="36" fill="#555">%s</text>`+"\n", left, esc(fmt.Sprintf("%s, %d CPUs, %s; %d in flight, %s per cell; dashed: store goal",
		rep.Date.Format("2006-01-02"), rep.Machine.CPUs, rep.Machine.GoVersion, rep.Config.Concurrency, rep.Config.Duration)))
	// Legend.
	lx := left
	for _, s := range strategiesOf(rep.Cells) {
		p(`<rect x="%.0f" y="44" width="10" height="10" fill="%s"/><text x="%.0f" y="53">%s</text>`+"\n", lx, colorOf(s), lx+14, esc(s))
		lx += 14 + 7*float64(len(s)) + 16
	}
	if hasRef {
		p(`<rect x="%.0f" y="44" width="10" height="10" fill="%s"/><text x="%.0f" y="53">%s</text>`+"\n", lx, referenceColor, lx+14, esc(referenceLabel))
	}
	// Grid and axis.
	for v := 0.0; v <= maxV+1e-9; v += 0.25 {
		stroke := "#e0e0e0"
		if math.Abs(v-1) < 1e-9 {
			stroke = "#333333"
		}
		p(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s"/>`+"\n", left, y(v), width-right, y(v), stroke)
		p(`<text x="%.0f" y="%.1f" text-anchor="end">%.2f</text>`+"\n", left-6, y(v)+4, v)
	}
	p(`<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">%s</text>`+"\n", top+plotH/2, top+plotH/2, esc("req/s ÷ ceiling req/s"))
	// Bars and labels.
	for i, g := range groups {
		bx := g.x0
		for _, br := range g.bars {
			v := math.Min(br.v, maxV)
			p(`<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
				bx, y(v), barW, y(0)-y(v), br.color, esc(br.title))
			bx += barW + barGap
		}
		p(`<text x="%.1f" y="%.0f" text-anchor="middle" font-size="9">%s</text>`+"\n", (g.x0+g.x1)/2, y(0)+13, esc(fmt.Sprintf("%dd", g.d)))
		p(`<text x="%.1f" y="%.0f" text-anchor="middle" font-size="9">%s</text>`+"\n", (g.x0+g.x1)/2, y(0)+24, esc(shortCount(g.n)))
		if g.newStore {
			end := g.x1
			for _, h := range groups[i+1:] {
				if h.store != g.store {
					break
				}
				end = h.x1
			}
			p(`<text x="%.1f" y="%.0f" text-anchor="middle" font-size="12" font-weight="bold">%s</text>`+"\n", (g.x0+end)/2, y(0)+44, esc(g.store))
			if goal, ok := storeTargets[g.store]; ok && goal <= maxV {
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5 3"/>`+"\n", g.x0-4, y(goal), end+4, y(goal))
			}
		}
	}
	p("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// strategiesOf returns the strategies of cells in first-seen order.
func strategiesOf(cells []Cell) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cells {
		if !seen[c.Strategy] {
			seen[c.Strategy] = true
			out = append(out, c.Strategy)
		}
	}
	return out
}

func colorOf(strategy string) string {
	if c, ok := strategyColors[strategy]; ok {
		return c
	}
	return "#888888"
}

// writeJSON writes the raw report as indented JSON.
func writeJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// readReport reads a report written by writeJSON.
func readReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rls-bench: read report: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("rls-bench: parse report %s: %w", path, err)
	}
	return &rep, nil
}
