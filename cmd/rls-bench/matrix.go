package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// benchDomain is the domain of the rules the matrix writes.
const benchDomain = "bench"

// Stores the matrix knows how to start.
var allStores = []string{"memory", "redis", "redis-cluster", "memcached"}

// benchStrategies are the strategies of the standard matrix.
var benchStrategies = []string{"fixed_window", "token_bucket", "gcra"}

// descriptorKeysPerStrategy is how many rule keys each strategy has, so
// that the descriptors of one request hit different rules.
const descriptorKeysPerStrategy = 3

// benchRules is the rules file of the matrix: for each strategy, three
// rule keys (<strategy>_0.._2) with limits high enough that the load is
// admitted and periods long enough that keys stay in the store.
const benchRules = `# Written by rls-bench matrix. Limits are far above the offered load, so
# every request is admitted and the store keeps every key it has seen.
domain: bench
descriptors:
  - {key: fixed_window_0, rate_limit: {rate: "1000000000/day"}}
  - {key: fixed_window_1, rate_limit: {rate: "1000000000/day"}}
  - {key: fixed_window_2, rate_limit: {rate: "1000000000/day"}}
  - {key: token_bucket_0, rate_limit: {rate: "100000/s", strategy: token_bucket, burst: 100000000}}
  - {key: token_bucket_1, rate_limit: {rate: "100000/s", strategy: token_bucket, burst: 100000000}}
  - {key: token_bucket_2, rate_limit: {rate: "100000/s", strategy: token_bucket, burst: 100000000}}
  - {key: gcra_0, rate_limit: {rate: "100000/s", strategy: gcra, burst: 100000000}}
  - {key: gcra_1, rate_limit: {rate: "100000/s", strategy: gcra, burst: 100000000}}
  - {key: gcra_2, rate_limit: {rate: "100000/s", strategy: gcra, burst: 100000000}}
`

// strategyKeys returns the descriptor keys of a strategy's rules.
func strategyKeys(strategy string) []string {
	keys := make([]string, descriptorKeysPerStrategy)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s_%d", strategy, i)
	}
	return keys
}

// MatrixConfig describes a matrix run. The zero value is not usable:
// start from DefaultMatrixConfig or QuickMatrixConfig.
type MatrixConfig struct {
	Stores        []string
	Descriptors   []int
	Cardinalities []int
	Strategies    []string
	// Duration and Warmup are per run (each cell and each ceiling).
	Duration, Warmup time.Duration
	Concurrency      int
	Connections      int
	Dist             string
	ZipfS            float64
	// MemoryKeys is the number of distinct keys driven into the memory
	// store to measure bytes per key; 0 skips the measurement.
	MemoryKeys int
	// EnvoyRLS is a prebuilt binary; empty builds ./cmd/envoy-rls.
	EnvoyRLS string
	// ServeArgs are extra `envoy-rls serve` flags for every store.
	ServeArgs []string
	// ServiceEnv is added to the environment of every service the
	// matrix measures alike: envoy-rls, the no-op server and the
	// reference (GOMAXPROCS=1, say, as a pod with one CPU would have).
	// The load generator keeps its own.
	ServiceEnv []string
	// CeilingPerCell measures the ceiling right before every cell;
	// otherwise once per (store, descriptors, keys) group.
	CeilingPerCell bool
	// Repeats is how many (ceiling, cell) pairs each cell runs; the pair
	// with the median throughput ratio is reported. 0 means 1.
	Repeats int
	// Quick records that this is the trimmed matrix of bench-check.
	Quick bool
	// Reference runs envoyproxy/ratelimit (the reference service) on the
	// same store as envoy-rls, with the same load right after each of its
	// fixed_window cells on redis, redis-cluster and memcached.
	Reference bool
	// ReferenceBin is a prebuilt reference binary; empty runs
	// bench/ensure-ratelimit.sh, which installs the pinned version.
	ReferenceBin string
}

// DefaultMatrixConfig returns the standard (full) matrix.
func DefaultMatrixConfig() MatrixConfig {
	return MatrixConfig{
		Stores:        allStores,
		Descriptors:   []int{1, 3},
		Cardinalities: []int{1_000, 1_000_000},
		Strategies:    benchStrategies,
		Duration:      3 * time.Second,
		Warmup:        time.Second,
		Concurrency:   32,
		Connections:   2,
		Dist:          DistUniform,
		ZipfS:         1.1,
		MemoryKeys:    1_000_000,
		// On a machine whose CPUs are shared by the load generator, the
		// servers and the store, store round trips of a saturated run can
		// exceed the 15 ms default and trip the circuit breaker: the
		// matrix measures capacity, not the failure mode.
		ServeArgs:      []string{"--store-timeout", "250ms"},
		CeilingPerCell: true,
		Reference:      true,
	}
}

// QuickMatrixConfig returns the trimmed matrix of `rls-bench check`:
// every store, 1 and 3 descriptors, 1k keys, fixed_window only, 2 s per
// run, each cell the median of 3 (ceiling, cell) pairs, and a 200k-key
// memory measurement.
func QuickMatrixConfig() MatrixConfig {
	c := DefaultMatrixConfig()
	c.Cardinalities = []int{1_000}
	c.Strategies = []string{"fixed_window"}
	c.Duration, c.Warmup = 1500*time.Millisecond, 500*time.Millisecond
	c.MemoryKeys = 200_000
	c.Repeats = 3
	c.Quick = true
	return c
}

// Cell is one measured configuration with the ceiling measured right
// before it.
type Cell struct {
	Store       string `json:"store"`
	Descriptors int    `json:"descriptors"`
	Cardinality int    `json:"cardinality"`
	Strategy    string `json:"strategy"`
	Result      Result `json:"result"`
	Ceiling     Result `json:"ceiling"`
	// Reference is envoyproxy/ratelimit's run with the same load on the
	// same store right after Result; nil when the reference did not run.
	Reference *Result `json:"reference,omitempty"`
}

// RefRatio is the cell's throughput over the reference's (0 without a
// reference run).
func (c Cell) RefRatio() float64 {
	if c.Reference == nil {
		return 0
	}
	return ratio(c.Result.RPS, c.Reference.RPS)
}

// CPUPerDecision is the CPU time of the service and its store's servers
// per request, in microseconds (0 when not measured).
func (r Result) CPUPerDecision() float64 { return r.ServiceCPUUS + r.StoreCPUUS }

// CPURatio is envoy-rls's CPU per decision (service and store) over the
// reference's (0 without a reference run or CPU figures).
func (c Cell) CPURatio() float64 {
	if c.Reference == nil {
		return 0
	}
	return ratio(c.Result.CPUPerDecision(), c.Reference.CPUPerDecision())
}

// ID names the cell in baselines: store/d<descriptors>/k<keys>/strategy.
func (c Cell) ID() string {
	return fmt.Sprintf("%s/d%d/k%s/%s", c.Store, c.Descriptors, shortCount(c.Cardinality), c.Strategy)
}

// RPSRatio is the cell's throughput over the ceiling's (0 when the
// ceiling has none).
func (c Cell) RPSRatio() float64 { return ratio(c.Result.RPS, c.Ceiling.RPS) }

// P99Ratio is the cell's p99 latency over the ceiling's.
func (c Cell) P99Ratio() float64 { return ratio(c.Result.P99US, c.Ceiling.P99US) }

func ratio(a, b float64) float64 {
	if b <= 0 || math.IsNaN(a) {
		return 0
	}
	return a / b
}

// shortCount writes 1000 as 1k and 1000000 as 1M.
func shortCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

// MemoryResult is the in-memory store's cost per tracked key.
type MemoryResult struct {
	Keys            int64   `json:"keys"`
	HeapBytes       float64 `json:"heap_inuse_delta_bytes"`
	RSSBytes        float64 `json:"rss_delta_bytes"`
	HeapBytesPerKey float64 `json:"heap_bytes_per_key"`
	RSSBytesPerKey  float64 `json:"rss_bytes_per_key"`
}

// Report is everything a matrix run measured.
type Report struct {
	Machine  Machine       `json:"machine"`
	Date     time.Time     `json:"date"`
	Command  string        `json:"command"`
	Config   MatrixConfig  `json:"config"`
	Cells    []Cell        `json:"cells"`
	Memory   *MemoryResult `json:"memory,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Problems []string      `json:"problems,omitempty"`
}

// storeEnv is a started store: the `envoy-rls serve` flags that use it,
// the process ids of its servers (for CPU figures) and the reference's
// environment variables that use it (nil: the reference has no such
// store).
type storeEnv struct {
	flags  []string
	pids   []int
	refEnv []string
	redis  *testservers.Server // the single node of store "redis"
}

// startStore starts the servers store needs (owned by h).
func startStore(h *harness, store string) (storeEnv, error) {
	switch store {
	case "memory":
		return storeEnv{flags: []string{"--store", "memory", "--memory-max-keys", "4000000"}}, nil
	case "redis":
		r := testservers.Redis(h)
		return storeEnv{
			flags:  []string{"--store", "redis", "--redis-url", "redis://" + r.Addr},
			pids:   []int{r.Pid()},
			refEnv: []string{"BACKEND_TYPE=redis", "REDIS_SOCKET_TYPE=tcp", "REDIS_TYPE=single", "REDIS_URL=" + r.Addr},
			redis:  r,
		}, nil
	case "redis-cluster":
		c := testservers.RedisCluster(h)
		var pids []int
		for _, n := range c.Nodes {
			pids = append(pids, n.Pid())
		}
		addrs := strings.Join(c.Addrs(), ",")
		return storeEnv{
			flags:  []string{"--store", "redis", "--redis-mode", "cluster", "--redis-addrs", addrs},
			pids:   pids,
			refEnv: []string{"BACKEND_TYPE=redis", "REDIS_SOCKET_TYPE=tcp", "REDIS_TYPE=cluster", "REDIS_URL=" + addrs},
		}, nil
	case "memcached":
		m := testservers.MemcachedWith(h, testservers.MemcachedOptions{MemoryMB: 1024, Connections: 4096})
		return storeEnv{
			flags:  []string{"--store", "memcached", "--memcached-servers", m.Addr},
			pids:   []int{m.Pid()},
			refEnv: []string{"BACKEND_TYPE=memcache", "MEMCACHE_HOST_PORT=" + m.Addr},
		}, nil
	}
	return storeEnv{}, fmt.Errorf("rls-bench: unknown store %q (want %s)", store, strings.Join(allStores, ", "))
}

// RunMatrix runs every cell of c, each store's cells against one
// envoy-rls started for it, with a ceiling run against the no-op server
// right before each cell (or, without CeilingPerCell, before each
// (store, descriptors, keys) group of strategies). Progress goes to log.
func RunMatrix(ctx context.Context, h *harness, c MatrixConfig, log io.Writer) (*Report, error) {
	began := time.Now()
	rep := &Report{Machine: DescribeMachine(), Date: began.UTC(), Config: c}
	dir, err := os.MkdirTemp("", "rls-bench-")
	if err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	h.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := c.EnvoyRLS
	if bin == "" {
		fmt.Fprintln(log, "building envoy-rls")
		if bin, err = buildEnvoyRLS(ctx, dir, log); err != nil {
			return nil, err
		}
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(benchRules), 0o600); err != nil {
		return nil, fmt.Errorf("rls-bench: %w", err)
	}
	noopProc, noop, err := startNoop(ctx, h, c.ServiceEnv)
	if err != nil {
		return nil, err
	}
	noopProbe := &CPUProbe{Service: []int{noopProc.Pid()}}
	refBin := ""
	if c.Reference {
		if refBin, err = ensureReference(ctx, c.ReferenceBin, log); err != nil {
			return nil, err
		}
	}
	// One key space per cardinality, built once: its values are shared by
	// every run (a uniform draw needs no state beyond each worker's).
	spaces := map[int]*KeySpace{}
	for _, n := range c.Cardinalities {
		if spaces[n], err = NewKeySpace(n, c.Dist, c.ZipfS); err != nil {
			return nil, err
		}
	}
	load := func(target string, probe *CPUProbe, d, n int, keys []string, seed uint64) (Result, error) {
		lc := DefaultLoadConfig()
		lc.Target, lc.Concurrency, lc.Connections = target, c.Concurrency, c.Connections
		lc.Duration, lc.Warmup = c.Duration, c.Warmup
		lc.Descriptors, lc.Cardinality, lc.Dist, lc.ZipfS = d, n, c.Dist, c.ZipfS
		lc.Keys, lc.Seed, lc.Probe = keys, seed, probe
		if err := lc.Validate(); err != nil {
			return Result{}, err
		}
		return runLoad(ctx, lc, spaces[n])
	}

	for _, store := range c.Stores {
		sh := h.child()
		env, err := startStore(sh, store)
		if err != nil {
			sh.Close()
			return nil, err
		}
		rls, err := startEnvoyRLS(ctx, sh, bin, rules, c.ServiceEnv, append(env.flags, c.ServeArgs...)...)
		if err != nil {
			sh.Close()
			return nil, err
		}
		rlsProbe := &CPUProbe{Service: []int{rls.Pid()}, Store: env.pids}
		var ref *refProcess
		var refProbe *CPUProbe
		if c.Reference && env.refEnv != nil && contains(c.Strategies, referenceStrategy) {
			if ref, err = startReference(ctx, sh, refBin, dir, append(env.refEnv, c.ServiceEnv...)); err != nil {
				sh.Close()
				return nil, err
			}
			refProbe = &CPUProbe{Service: []int{ref.Pid()}, Store: env.pids}
		}
		seed := uint64(1)
		for _, d := range c.Descriptors {
			for _, n := range c.Cardinalities {
				var ceil Result
				for i, strat := range c.Strategies {
					// Each repeat is a (ceiling, cell) pair; the pair with the
					// median throughput ratio is kept.
					var runs []Cell
					for range max(c.Repeats, 1) {
						if i == 0 || c.CeilingPerCell || c.Repeats > 1 {
							seed++
							if ceil, err = load(noop, noopProbe, d, n, strategyKeys(strat), seed); err != nil {
								sh.Close()
								return nil, err
							}
							fmt.Fprintf(log, "%-13s d=%d keys=%-4s %-13s %8.0f req/s  p50 %6.0fµs  p99 %6.0fµs\n",
								"ceiling", d, shortCount(n), "", ceil.RPS, ceil.P50US, ceil.P99US)
						}
						seed++
						res, err := load(rls.GRPCAddr, rlsProbe, d, n, strategyKeys(strat), seed)
						if err != nil {
							sh.Close()
							return nil, err
						}
						cell := Cell{Store: store, Descriptors: d, Cardinality: n, Strategy: strat, Result: res, Ceiling: ceil}
						if ref != nil && strat == referenceStrategy {
							// The same load (the same seed: the same keys in the
							// same order) right after envoy-rls's.
							rr, err := load(ref.GRPCAddr, refProbe, d, n, strategyKeys(strat), seed)
							if err != nil {
								sh.Close()
								return nil, err
							}
							cell.Reference = &rr
							fmt.Fprintf(log, "%-13s d=%d keys=%-4s %-13s %8.0f req/s  p50 %6.0fµs  p99 %6.0fµs  cpu %5.1f+%5.1fµs/req  envoy-rls ×%.2f rps, cpu %5.1f+%5.1fµs/req\n",
								"reference", d, shortCount(n), strat, rr.RPS, rr.P50US, rr.P99US, rr.ServiceCPUUS, rr.StoreCPUUS,
								cell.RefRatio(), res.ServiceCPUUS, res.StoreCPUUS)
						}
						runs = append(runs, cell)
					}
					sort.Slice(runs, func(a, b int) bool { return runs[a].RPSRatio() < runs[b].RPSRatio() })
					cell := runs[len(runs)/2]
					res := cell.Result
					rep.Cells = append(rep.Cells, cell)
					fmt.Fprintf(log, "%-13s d=%d keys=%-4s %-13s %8.0f req/s  p50 %6.0fµs  p99 %6.0fµs  ×%.2f rps  ×%.2f p99  cpu %5.1f+%5.1fµs/req  errors %d\n",
						store, d, shortCount(n), strat, res.RPS, res.P50US, res.P99US, cell.RPSRatio(), cell.P99Ratio(), res.ServiceCPUUS, res.StoreCPUUS, res.Errors)
					if res.Errors > 0 {
						rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d errors (first: %s)", cell.ID(), res.Errors, res.FirstError))
					}
					if r := cell.Reference; r != nil && r.Errors > 0 {
						rep.Problems = append(rep.Problems, fmt.Sprintf("%s, reference: %d errors (first: %s)", cell.ID(), r.Errors, r.FirstError))
					}
				}
			}
		}
		if rls.Exited() {
			rep.Problems = append(rep.Problems, fmt.Sprintf("envoy-rls (%s) exited during the run:\n%s", store, rls.Output()))
		}
		if ref != nil && ref.Exited() {
			rep.Problems = append(rep.Problems, fmt.Sprintf("envoyproxy/ratelimit (%s) exited during the run:\n%s", store, ref.Output()))
		}
		sh.Close()
	}
	if c.MemoryKeys > 0 {
		fmt.Fprintf(log, "memory per key: driving %d distinct fixed_window keys\n", c.MemoryKeys)
		m, err := MeasureMemoryPerKey(ctx, h, bin, rules, c.MemoryKeys, c.Concurrency, c.Connections)
		if err != nil {
			return nil, err
		}
		rep.Memory = m
		fmt.Fprintf(log, "memory per key: %d keys, %.0f heap bytes/key, %.0f RSS bytes/key\n", m.Keys, m.HeapBytesPerKey, m.RSSBytesPerKey)
	}
	rep.Elapsed = time.Since(began)
	return rep, nil
}

// MeasureMemoryPerKey starts envoy-rls on the memory store, sends n
// distinct fixed_window keys (8 descriptors per request, each value once)
// and compares the memory metrics before and after, each read after a
// forced GC (the debug endpoint's /debug/pprof/heap?gc=1).
func MeasureMemoryPerKey(ctx context.Context, parent *harness, bin, rules string, n, concurrency, connections int) (*MemoryResult, error) {
	h := parent.child()
	defer h.Close()
	rls, err := startEnvoyRLS(ctx, h, bin, rules, nil, "--store", "memory", "--memory-max-keys", fmt.Sprint(2*n))
	if err != nil {
		return nil, err
	}
	type sample struct{ keys, heap, rss float64 }
	read := func() (sample, error) {
		if _, err := testservers.GetOK(ctx, "http://"+rls.DebugAddr+"/debug/pprof/heap?gc=1"); err != nil {
			return sample{}, err
		}
		m, err := testservers.Metrics(ctx, rls.HTTPAddr)
		if err != nil {
			return sample{}, err
		}
		s := sample{m["envoy_rls_memory_store_keys"], m["go_memstats_heap_inuse_bytes"], m["process_resident_memory_bytes"]}
		if s.heap == 0 {
			return s, fmt.Errorf("rls-bench: envoy-rls /metrics has no go_memstats_heap_inuse_bytes")
		}
		return s, nil
	}
	// A short warm-up first, so that connection buffers and pools are in
	// place before the first reading.
	lc := DefaultLoadConfig()
	lc.Target, lc.Concurrency, lc.Connections = rls.GRPCAddr, concurrency, connections
	lc.Descriptors, lc.Keys, lc.Dist = 8, strategyKeys("fixed_window"), DistUniform
	lc.Cardinality, lc.Duration, lc.Warmup = 1, 300*time.Millisecond, 0
	if _, err := RunLoad(ctx, lc); err != nil {
		return nil, err
	}
	before, err := read()
	if err != nil {
		return nil, err
	}
	lc.Dist, lc.Cardinality, lc.Duration = DistSeq, n, 10*time.Minute
	lc.Domain = benchDomain
	// Values m0, m1, ...: distinct from the warm-up's k0.
	ks, err := newKeySpace("m", n, DistSeq, 0)
	if err != nil {
		return nil, err
	}
	res, err := runLoad(ctx, lc, ks)
	if err != nil {
		return nil, err
	}
	if res.Errors > 0 {
		return nil, fmt.Errorf("rls-bench: memory measurement: %d errors (first: %s)", res.Errors, res.FirstError)
	}
	after, err := read()
	if err != nil {
		return nil, err
	}
	keys := after.keys - before.keys
	if keys <= 0 {
		return nil, fmt.Errorf("rls-bench: memory measurement: the store reports %v keys before and %v after", before.keys, after.keys)
	}
	m := &MemoryResult{Keys: int64(keys), HeapBytes: after.heap - before.heap, RSSBytes: after.rss - before.rss}
	m.HeapBytesPerKey, m.RSSBytesPerKey = m.HeapBytes/keys, m.RSSBytes/keys
	return m, nil
}
