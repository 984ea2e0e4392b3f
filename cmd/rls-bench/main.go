// Command rls-bench measures envoy-rls reproducibly.
//
//	rls-bench load [flags]     closed-loop gRPC load on ShouldRateLimit
//	rls-bench noop [flags]     a do-nothing RateLimitService (the ceiling)
//	rls-bench matrix [flags]   the standard matrix; writes docs/benchmarks.md
//	rls-bench check [flags]    the quick matrix against bench/baseline.json
//
// Every figure of the matrix is a ratio to the no-op server's, measured
// in the same run on the same machine, so that figures from different
// machines can be compared.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/gctune"
	"github.com/envoy-rls/envoy-rls/internal/settings"
)

const usage = `usage:
  rls-bench load [flags]     closed-loop gRPC load on ShouldRateLimit (see: rls-bench load -h)
  rls-bench noop [flags]     serve a do-nothing RateLimitService: the ceiling
  rls-bench matrix [flags]   run the standard matrix and write docs/benchmarks.md and its chart
  rls-bench check [flags]    run the quick matrix and compare it with bench/baseline.json
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "load":
		err = cmdLoad(ctx, args[1:], stdout, stderr)
	case "noop":
		err = cmdNoop(ctx, args[1:], stderr)
	case "matrix":
		err = cmdMatrix(ctx, args, stdout, stderr)
	case "check":
		err = cmdCheck(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "rls-bench: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

// errUsage marks a command line the flag package already reported.
var errUsage = errors.New("rls-bench: bad usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "rls-bench %s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func cmdLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := DefaultLoadConfig()
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	finish := loadFlags(fs, &c)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	res, err := RunLoad(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		return res.WriteJSON(stdout)
	}
	return res.WriteText(stdout)
}

func cmdNoop(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("noop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8091", "gRPC listen address")
	floor := fs.Int64("gc-heap-floor", settings.DefaultGCHeapFloor, "as envoy-rls serve's --gc-heap-floor (same default), so that the ceiling runs with the same garbage collector settings")
	if err := parse(fs, args); err != nil {
		return err
	}
	gctune.Start(*floor)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("rls-bench: noop: %w", err)
	}
	return serveNoop(ctx, l)
}

// matrixFlags binds the matrix's flags to c; call the returned function
// after parsing.
func matrixFlags(fs *flag.FlagSet, c *MatrixConfig) (finish func() error) {
	stores := fs.String("stores", strings.Join(c.Stores, ","), "stores: memory, redis, redis-cluster, memcached")
	descs := fs.String("descriptors", joinInts(c.Descriptors), "descriptors per request")
	cards := fs.String("keys", joinInts(c.Cardinalities), "key cardinalities")
	strats := fs.String("strategies", strings.Join(c.Strategies, ","), "strategies: fixed_window, token_bucket, gcra")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured time per run")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "warm-up per run")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "requests in flight")
	fs.IntVar(&c.Connections, "connections", c.Connections, "gRPC connections")
	fs.StringVar(&c.Dist, "dist", c.Dist, "key distribution: uniform or zipf")
	fs.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "zipf exponent (> 1)")
	fs.IntVar(&c.MemoryKeys, "memory-keys", c.MemoryKeys, "distinct keys for the memory-per-key measurement (0: skip)")
	fs.StringVar(&c.EnvoyRLS, "envoy-rls", c.EnvoyRLS, "a prebuilt envoy-rls binary (default: go build ./cmd/envoy-rls)")
	serveArgs := fs.String("serve-args", strings.Join(c.ServeArgs, " "), "extra `envoy-rls serve` flags, space-separated")
	serviceEnv := fs.String("service-env", strings.Join(c.ServiceEnv, ","), "environment added to every measured service alike (envoy-rls, the no-op server, the reference), comma-separated KEY=VALUE, e.g. GOMAXPROCS=1")
	fs.IntVar(&c.Repeats, "repeats", c.Repeats, "(ceiling, cell) pairs per cell; the median throughput ratio is kept")
	fs.BoolVar(&c.Reference, "reference", c.Reference, "also run envoyproxy/ratelimit (the reference) on redis, redis-cluster and memcached with the fixed_window load (installed by bench/ensure-ratelimit.sh)")
	fs.StringVar(&c.ReferenceBin, "reference-bin", c.ReferenceBin, "a prebuilt envoyproxy/ratelimit service binary (default: bench/ensure-ratelimit.sh, which installs the pinned version)")
	fs.BoolVar(&c.CeilingPerCell, "ceiling-per-cell", c.CeilingPerCell, "measure the ceiling right before every cell (false: once per store, descriptors and keys)")
	return func() error {
		var err error
		var errs []error
		c.Stores, c.Strategies = splitList(*stores), splitList(*strats)
		if c.Descriptors, err = parseInts(*descs); err != nil {
			errs = append(errs, err)
		}
		if c.Cardinalities, err = parseInts(*cards); err != nil {
			errs = append(errs, err)
		}
		c.ServeArgs = strings.Fields(*serveArgs)
		c.ServiceEnv = splitList(*serviceEnv)
		for _, kv := range c.ServiceEnv {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				errs = append(errs, fmt.Errorf("rls-bench: -service-env entry %q is not KEY=VALUE", kv))
			}
		}
		for _, s := range c.Stores {
			if !contains(allStores, s) {
				errs = append(errs, fmt.Errorf("rls-bench: unknown store %q (want %s)", s, strings.Join(allStores, ", ")))
			}
		}
		for _, s := range c.Strategies {
			if !contains(benchStrategies, s) {
				errs = append(errs, fmt.Errorf("rls-bench: strategy %q has no rules in the matrix (want %s)", s, strings.Join(benchStrategies, ", ")))
			}
		}
		if len(c.Stores) == 0 || len(c.Strategies) == 0 || len(c.Descriptors) == 0 || len(c.Cardinalities) == 0 {
			errs = append(errs, errors.New("rls-bench: -stores, -strategies, -descriptors and -keys must not be empty"))
		}
		if c.Dist == DistSeq {
			errs = append(errs, errors.New("rls-bench: -dist seq is for the load command"))
		}
		return errors.Join(errs...)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("rls-bench: %q is not a positive integer", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// reproduce returns the command that runs args again, without -json and
// its file (a copy of the raw report, which changes nothing measured and
// names a scratch path).
func reproduce(args []string) string {
	kept := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		name, isFlag := strings.CutPrefix(args[i], "-")
		switch name = strings.TrimPrefix(name, "-"); {
		case isFlag && name == "json":
			i++ // and its value
		case isFlag && strings.HasPrefix(name, "json="):
		default:
			kept = append(kept, args[i])
		}
	}
	return "go run ./cmd/rls-bench " + strings.Join(kept, " ")
}

func cmdMatrix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := DefaultMatrixConfig()
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "the trimmed matrix of bench-check (1k keys, fixed_window, 1.5 s runs, median of 3, 200k-key memory probe); other flags still apply")
	out := fs.String("out", "docs/benchmarks.md", "markdown report to write (empty: none)")
	svg := fs.String("svg", "docs/img/benchmarks.svg", "SVG chart to write (empty: none)")
	jsonOut := fs.String("json", "", "also write the raw report as JSON to this file")
	render := fs.String("render", "", "do not run: write the markdown and chart from this JSON report of an earlier run (see -json)")
	// -quick changes the defaults, so it is looked for before the others
	// are bound.
	for _, a := range args[1:] {
		if a == "-quick" || a == "--quick" || a == "-quick=true" || a == "--quick=true" {
			c = QuickMatrixConfig()
		}
	}
	finish := matrixFlags(fs, &c)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	c.Quick = *quick
	if *render != "" {
		rep, err := readReport(*render)
		if err != nil {
			return err
		}
		return writeOutputs(rep, *out, *svg, "", stdout)
	}
	rep, err := runMatrixCommand(ctx, c, args, stdout)
	if err != nil {
		return err
	}
	return writeOutputs(rep, *out, *svg, *jsonOut, stdout)
}

// runMatrixCommand runs the matrix under a harness that stops everything
// it started, whatever happens.
func runMatrixCommand(ctx context.Context, c MatrixConfig, args []string, log io.Writer) (*Report, error) {
	h := newHarness(log)
	defer h.Close()
	rep, err := RunMatrix(ctx, h, c, log)
	if err != nil {
		return nil, err
	}
	rep.Command = reproduce(args)
	fmt.Fprintf(log, "matrix done in %s\n", rep.Elapsed.Round(time.Second))
	for _, t := range EvaluateTargets(rep) {
		fmt.Fprintf(log, "  %-9s %s (%s): %s\n", t.Verdict, t.Name, t.Goal, t.Got)
	}
	return rep, nil
}

// writeOutputs writes the markdown report, the chart and the raw JSON
// where asked.
func writeOutputs(rep *Report, out, svg, jsonOut string, log io.Writer) error {
	write := func(path string, f func(io.Writer) error) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("rls-bench: %w", err)
		}
		file, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("rls-bench: %w", err)
		}
		if err := f(file); err != nil {
			file.Close()
			return fmt.Errorf("rls-bench: write %s: %w", path, err)
		}
		if err := file.Close(); err != nil {
			return fmt.Errorf("rls-bench: write %s: %w", path, err)
		}
		fmt.Fprintln(log, "wrote", path)
		return nil
	}
	if svg != "" {
		if err := write(svg, func(w io.Writer) error { return WriteSVG(w, rep) }); err != nil {
			return err
		}
	}
	if out != "" {
		rel := svg
		if svg != "" {
			if r, err := filepath.Rel(filepath.Dir(out), svg); err == nil {
				rel = filepath.ToSlash(r)
			}
		}
		// bench/notes.md, kept by hand, explains the figures from profiles;
		// the report includes it so that regenerating keeps it.
		notes, err := os.ReadFile(filepath.Join(filepath.Dir(out), "..", "bench", "notes.md"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := write(out, func(w io.Writer) error { return WriteMarkdown(w, rep, rel, string(notes)) }); err != nil {
			return err
		}
	}
	if jsonOut != "" {
		if err := write(jsonOut, func(w io.Writer) error { return writeJSON(w, rep) }); err != nil {
			return err
		}
	}
	return nil
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := QuickMatrixConfig()
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	finish := matrixFlags(fs, &c)
	baseline := fs.String("baseline", "bench/baseline.json", "the recorded baseline")
	update := fs.Bool("update", false, "rewrite the baseline from this run instead of comparing")
	var m Margins
	fs.Float64Var(&m.RPS, "margin", 0.15, "a throughput ratio more than this fraction below its baseline fails")
	fs.Float64Var(&m.P99, "p99-margin", 0.5, "a p99 ratio more than this fraction above its baseline fails (0: not compared; tail latency is noisy on shared machines)")
	fs.Float64Var(&m.Memory, "memory-margin", 0.15, "bytes per key more than this fraction above the baseline fail (0: not compared)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	var base Baseline
	if !*update {
		var err error
		if base, err = ReadBaseline(*baseline); err != nil {
			return fmt.Errorf("%w (record one with: rls-bench check -update)", err)
		}
	}
	rep, err := runMatrixCommand(ctx, c, args, stdout)
	if err != nil {
		return err
	}
	cur := BaselineOf(rep)
	if *update {
		if err := os.MkdirAll(filepath.Dir(*baseline), 0o755); err != nil {
			return fmt.Errorf("rls-bench: %w", err)
		}
		f, err := os.Create(*baseline)
		if err != nil {
			return fmt.Errorf("rls-bench: %w", err)
		}
		if err := WriteBaseline(f, cur); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("rls-bench: %w", err)
		}
		fmt.Fprintln(stdout, "wrote", *baseline)
		return nil
	}
	cs := Compare(base, cur, m)
	for _, cmp := range cs {
		fmt.Fprintln(stdout, cmp)
	}
	if bad := Regressions(cs); len(bad) > 0 {
		return fmt.Errorf("rls-bench: %d of %d figures regressed beyond the margins against %s", len(bad), len(cs), *baseline)
	}
	fmt.Fprintf(stdout, "no regression against %s (%d figures)\n", *baseline, len(cs))
	return nil
}
