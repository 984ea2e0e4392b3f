package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// LoadConfig describes one closed-loop load run. The zero value is not
// usable: start from DefaultLoadConfig.
type LoadConfig struct {
	// Target is the gRPC address of the rate-limit service.
	Target string
	// Concurrency is the number of requests in flight (one worker each).
	Concurrency int
	// Connections is the number of gRPC ClientConns; workers use them
	// round-robin.
	Connections int
	// Duration is how long the measured part lasts; Warmup precedes it
	// and is not recorded.
	Duration time.Duration
	Warmup   time.Duration
	// Descriptors is the number of descriptors per request; descriptor j
	// has the single entry {Keys[j mod len(Keys)]: value}, its value drawn
	// from the key space on its own.
	Descriptors int
	// Cardinality is the number of distinct values; Dist (uniform, zipf
	// or seq) and ZipfS say how they are drawn.
	Cardinality int
	Dist        string
	ZipfS       float64
	// HitsAddend is the request's hits_addend (0: unset, meaning 1).
	HitsAddend uint32
	// Domain and Keys select the rules of a rules file.
	Domain string
	Keys   []string
	// Seed makes the key draws reproducible.
	Seed uint64
	// Probe, when set, names the processes whose CPU time per request the
	// run reports (Result.ServiceCPUUS and StoreCPUUS; LoadCPUUS, this
	// process's, is read with them).
	Probe *CPUProbe
}

// DefaultLoadConfig returns the defaults of `rls-bench load`.
func DefaultLoadConfig() LoadConfig {
	return LoadConfig{
		Target:      "127.0.0.1:8081",
		Concurrency: 32,
		Connections: 2,
		Duration:    3 * time.Second,
		Warmup:      time.Second,
		Descriptors: 1,
		Cardinality: 1000,
		Dist:        DistUniform,
		ZipfS:       1.1,
		Domain:      benchDomain,
		Keys:        []string{"fixed_window_0"},
		Seed:        1,
	}
}

// Validate reports every invalid field at once.
func (c LoadConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("rls-bench: "+format, a...)) }
	if c.Target == "" {
		bad("-target is empty")
	}
	if c.Concurrency < 1 || c.Connections < 1 {
		bad("-concurrency and -connections must be at least 1")
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		bad("-duration must be positive and -warmup not negative")
	}
	if c.Descriptors < 1 || c.Descriptors > 64 {
		bad("-descriptors must be between 1 and 64, got %d", c.Descriptors)
	}
	if c.Cardinality < 1 {
		bad("-keys-cardinality must be at least 1")
	}
	if c.Domain == "" || len(c.Keys) == 0 {
		bad("-domain and -key must not be empty")
	}
	for _, k := range c.Keys {
		if k == "" {
			bad("-key has an empty descriptor key")
		}
	}
	return errors.Join(errs...)
}

// Result is the outcome of one load run. Latencies are in microseconds
// in JSON.
type Result struct {
	Target      string  `json:"target"`
	Concurrency int     `json:"concurrency"`
	Connections int     `json:"connections"`
	Descriptors int     `json:"descriptors"`
	Cardinality int     `json:"cardinality"`
	Dist        string  `json:"dist"`
	Seconds     float64 `json:"seconds"`
	Requests    uint64  `json:"requests"`
	OK          uint64  `json:"ok"`
	Over        uint64  `json:"over_limit"`
	Errors      uint64  `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	RPS         float64 `json:"rps"`
	MeanUS      float64 `json:"mean_us"`
	P50US       float64 `json:"p50_us"`
	P90US       float64 `json:"p90_us"`
	P99US       float64 `json:"p99_us"`
	P999US      float64 `json:"p999_us"`
	MaxUS       float64 `json:"max_us"`
	// ServiceCPUUS and StoreCPUUS are the CPU time (user and system, from
	// /proc) of the service and of the store's servers during the
	// measured part, in microseconds per request; 0 when not probed.
	ServiceCPUUS float64 `json:"service_cpu_us_per_req,omitempty"`
	StoreCPUUS   float64 `json:"store_cpu_us_per_req,omitempty"`
	// LoadCPUUS is the load generator's own CPU time per request (this
	// process's, read with the probe's); 0 when not probed.
	LoadCPUUS float64 `json:"load_cpu_us_per_req,omitempty"`
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// newResult summarises a merged histogram of successful calls.
func newResult(c LoadConfig, h *Histogram, elapsed time.Duration, ok, over, errs uint64, firstErr string) Result {
	r := Result{
		Target: c.Target, Concurrency: c.Concurrency, Connections: c.Connections,
		Descriptors: c.Descriptors, Cardinality: c.Cardinality, Dist: c.Dist,
		Seconds: elapsed.Seconds(), Requests: ok + over + errs, OK: ok, Over: over, Errors: errs, FirstError: firstErr,
		MeanUS: micros(h.Mean()), P50US: micros(h.Quantile(0.5)), P90US: micros(h.Quantile(0.9)),
		P99US: micros(h.Quantile(0.99)), P999US: micros(h.Quantile(0.999)), MaxUS: micros(h.Max()),
	}
	if elapsed > 0 {
		r.RPS = float64(ok+over) / elapsed.Seconds()
	}
	return r
}

// WriteText writes r as a short human-readable report.
func (r Result) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "target %s: %d in flight over %d conns, %d descriptors, %d keys (%s), %.1fs\n"+
		"  requests %d: ok %d, over_limit %d, errors %d\n"+
		"  throughput %.0f req/s\n"+
		"  latency µs: mean %.0f  p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
		r.Target, r.Concurrency, r.Connections, r.Descriptors, r.Cardinality, r.Dist, r.Seconds,
		r.Requests, r.OK, r.Over, r.Errors, r.RPS, r.MeanUS, r.P50US, r.P90US, r.P99US, r.P999US, r.MaxUS)
	if err == nil && r.FirstError != "" {
		_, err = fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
	}
	return err
}

// WriteJSON writes r as one indented JSON object.
func (r Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Run phases shared by the workers of one run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// worker is one closed-loop caller with its own pre-built request, key
// generator and histogram.
type worker struct {
	client rlsv3.RateLimitServiceClient
	req    *rlsv3.RateLimitRequest
	ents   []*rlcommon.RateLimitDescriptor_Entry
	gen    *KeyGen
	ks     *KeySpace
	hist   Histogram
	ok     uint64
	over   uint64
	errs   uint64
	first  string
}

// newWorker builds the worker's request once: each call only swaps the
// entry values.
func newWorker(c LoadConfig, client rlsv3.RateLimitServiceClient, ks *KeySpace, seed uint64) *worker {
	w := &worker{client: client, gen: ks.Gen(seed), ks: ks}
	w.req = &rlsv3.RateLimitRequest{Domain: c.Domain, HitsAddend: c.HitsAddend}
	for j := 0; j < c.Descriptors; j++ {
		e := &rlcommon.RateLimitDescriptor_Entry{Key: c.Keys[j%len(c.Keys)]}
		w.ents = append(w.ents, e)
		w.req.Descriptors = append(w.req.Descriptors, &rlcommon.RateLimitDescriptor{Entries: []*rlcommon.RateLimitDescriptor_Entry{e}})
	}
	return w
}

// run calls until the phase is phaseStop (or a seq key space runs out),
// recording the calls that started while measuring.
func (w *worker) run(ctx context.Context, phase *atomic.Int32) {
	for {
		p := phase.Load()
		if p == phaseStop {
			return
		}
		for _, e := range w.ents {
			i := w.gen.Next()
			if i < 0 {
				return
			}
			e.Value = w.ks.Value(i)
		}
		start := time.Now()
		resp, err := w.client.ShouldRateLimit(ctx, w.req)
		took := time.Since(start)
		if p != phaseMeasure && w.ks.dist != DistSeq {
			continue
		}
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			w.errs++
			if w.first == "" {
				w.first = err.Error()
			}
		case resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT:
			w.over++
			w.hist.Record(took)
		default:
			w.ok++
			w.hist.Record(took)
		}
	}
}

// RunLoad runs one closed-loop load: Concurrency workers call
// ShouldRateLimit back to back for Warmup (not recorded) then Duration.
// With DistSeq the run also ends once every key was sent, and warm-up
// calls are recorded (each key is sent once). Latencies of failed calls
// are not recorded.
func RunLoad(ctx context.Context, c LoadConfig) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	ks, err := NewKeySpace(c.Cardinality, c.Dist, c.ZipfS)
	if err != nil {
		return Result{}, err
	}
	return runLoad(ctx, c, ks)
}

// runLoad is RunLoad with a key space built by the caller, so that a
// matrix reuses one space of a million values across runs.
func runLoad(ctx context.Context, c LoadConfig, ks *KeySpace) (Result, error) {
	conns := make([]*grpc.ClientConn, c.Connections)
	for i := range conns {
		cc, err := grpc.NewClient(c.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			for _, x := range conns[:i] {
				x.Close()
			}
			return Result{}, fmt.Errorf("rls-bench: dial %s: %w", c.Target, err)
		}
		conns[i] = cc
	}
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	workers := make([]*worker, c.Concurrency)
	for i := range workers {
		workers[i] = newWorker(c, rlsv3.NewRateLimitServiceClient(conns[i%len(conns)]), ks, c.Seed*1_000_003+uint64(i))
	}
	// Calls still in flight when the run ends get a grace period, then
	// are cancelled (and not counted).
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var phase atomic.Int32
	if c.Warmup == 0 {
		// No warm-up: every call is measured, the workers' first ones
		// included (on a busy machine they start before the timer fires).
		phase.Store(phaseMeasure)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(callCtx, &phase)
		}()
	}
	go func() { wg.Wait(); close(done) }()

	timer := time.NewTimer(c.Warmup)
	defer timer.Stop()
	start := time.Now()
	cpuBefore := c.Probe.sample()
	if ks.dist == DistSeq {
		timer.Reset(c.Warmup + c.Duration)
	} else {
		select {
		case <-timer.C:
		case <-done:
		case <-ctx.Done():
		}
		phase.Store(phaseMeasure)
		start = time.Now()
		cpuBefore = c.Probe.sample()
		timer.Reset(c.Duration)
	}
	select {
	case <-timer.C:
	case <-done:
	case <-ctx.Done():
	}
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	cpuAfter := c.Probe.sample()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cancel()
		<-done
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("rls-bench: load interrupted: %w", err)
	}
	var h Histogram
	var ok, over, errs uint64
	first := ""
	for _, w := range workers {
		h.Merge(&w.hist)
		ok, over, errs = ok+w.ok, over+w.over, errs+w.errs
		if first == "" {
			first = w.first
		}
	}
	r := newResult(c, &h, elapsed, ok, over, errs, first)
	cpu := perRequest(cpuBefore, cpuAfter, r.Requests)
	r.ServiceCPUUS, r.StoreCPUUS, r.LoadCPUUS = cpu.service, cpu.store, cpu.load
	return r, nil
}

// loadFlags binds the flags of `rls-bench load` to c. Call the returned
// function after fs.Parse: it copies the flags that need a conversion.
func loadFlags(fs *flag.FlagSet, c *LoadConfig) (finish func() error) {
	fs.StringVar(&c.Target, "target", c.Target, "gRPC address of the rate-limit service")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "requests in flight (closed loop: one worker each)")
	fs.IntVar(&c.Connections, "connections", c.Connections, "gRPC connections, used round-robin by the workers")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "warm-up before measuring (not recorded)")
	fs.IntVar(&c.Descriptors, "descriptors", c.Descriptors, "descriptors per request")
	fs.IntVar(&c.Cardinality, "keys-cardinality", c.Cardinality, "distinct descriptor values")
	fs.StringVar(&c.Dist, "dist", c.Dist, "value distribution: uniform, zipf or seq (each value once)")
	fs.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "zipf exponent (> 1)")
	hits := fs.Uint("hits-addend", uint(c.HitsAddend), "request hits_addend (0: unset, counts as 1)")
	fs.StringVar(&c.Domain, "domain", c.Domain, "request domain")
	keys := fs.String("key", strings.Join(c.Keys, ","), "descriptor keys, comma-separated; descriptor j uses key j mod n")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the key draws")
	return func() error {
		if *hits > math.MaxUint32 {
			return fmt.Errorf("rls-bench: -hits-addend %d does not fit in 32 bits", *hits)
		}
		c.HitsAddend = uint32(*hits)
		c.Keys = splitList(*keys)
		return nil
	}
}

// splitList splits a comma-separated list, dropping spaces around items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
