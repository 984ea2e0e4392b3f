package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// The simulated traffic and the limit every strategy gets.
const (
	duration   = 40 * strategies.Second       // length of the simulation
	binWidth   = 250 * strategies.Millisecond // width of one bar
	burstEvery = 8 * strategies.Second        // a burst starts every burstEvery …
	burstFirst = 2 * strategies.Second        // … from burstFirst on
	burstSize  = 30                           // requests per burst
	burstSpan  = 300 * strategies.Millisecond // a burst's requests spread over burstSpan
	trickle    = 4                            // steady requests per second, on average
	seed       = 20240611
	t0         = 1_700_000_000 * strategies.Second // simulated start, µs since the epoch
)

// limit is "10/s" with burst 5 (token buckets, gcra) and max_debt 3
// (token_bucket_with_debt); each strategy reads what applies to it.
var limit = strategies.Limit{Requests: 10, Period: strategies.Second, Burst: 5, MaxDebt: 3}

// request is one simulated request and its fate.
type request struct {
	at      int64 // µs since the start of the simulation
	allowed bool
}

// traffic returns the simulated request times, sorted, in µs since the
// start: bursts of burstSize requests every burstEvery plus a random
// trickle of about trickle requests per second.
func traffic() []int64 {
	rng := rand.New(rand.NewPCG(seed, seed))
	var at []int64
	for b := burstFirst; b < duration; b += burstEvery {
		for i := range burstSize {
			at = append(at, b+int64(i)*burstSpan/burstSize)
		}
	}
	for t := int64(0); ; {
		t += int64(rng.ExpFloat64() * float64(strategies.Second) / trickle)
		if t >= duration {
			break
		}
		at = append(at, t)
	}
	// Sort (insertion into the burst times; the slice is small).
	for i := 1; i < len(at); i++ {
		for j := i; j > 0 && at[j] < at[j-1]; j-- {
			at[j], at[j-1] = at[j-1], at[j]
		}
	}
	return at
}

// simulate sends times, one hit each, to a fresh key of strategy s.
func simulate(s strategies.Strategy, times []int64) ([]request, strategies.Limit, error) {
	lim, err := s.Prepare(limit)
	if err != nil {
		return nil, lim, fmt.Errorf("prepare %s: %w", s.Name(), err)
	}
	var st strategies.State
	out := make([]request, len(times))
	for i, at := range times {
		var d strategies.Decision
		st, d = s.Step(st, t0+at, lim, 1)
		out[i] = request{at: at, allowed: d.Allowed}
	}
	return out, lim, nil
}

// run writes strategy-<name>.svg for every registered strategy into dir
// and returns the paths written.
func run(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	times := traffic()
	var files []string
	for _, name := range strategies.Names() {
		s, _ := strategies.Lookup(name)
		reqs, lim, err := simulate(s, times)
		if err != nil {
			return files, err
		}
		path := filepath.Join(dir, "strategy-"+name+".svg")
		if err := os.WriteFile(path, render(name, lim, reqs), 0o644); err != nil {
			return files, fmt.Errorf("write %s: %w", path, err)
		}
		files = append(files, path)
	}
	return files, nil
}

// Layout of a chart, in SVG user units.
const (
	width   = 800
	height  = 260
	left    = 44
	right   = 16
	top     = 40
	bottom  = 36
	plotW   = width - left - right
	plotH   = height - top - bottom
	colorOK = "#2e8b57"
	colorNo = "#d9534f"
)

// render draws reqs as stacked bars per binWidth (admitted below, denied
// above) with the limit's average rate as a dashed line.
func render(name string, lim strategies.Limit, reqs []request) []byte {
	nbins := int(duration / binWidth)
	ok := make([]int, nbins)
	no := make([]int, nbins)
	var okTotal, noTotal int
	for _, r := range reqs {
		b := int(r.at / binWidth)
		if r.allowed {
			ok[b]++
			okTotal++
		} else {
			no[b]++
			noTotal++
		}
	}
	ymax := 1
	for i := range ok {
		ymax = max(ymax, ok[i]+no[i])
	}
	ymax = (ymax + 4) / 5 * 5
	y := func(v float64) float64 { return top + plotH - v*plotH/float64(ymax) }
	x := func(t int64) float64 { return left + float64(t)*plotW/float64(duration) }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<title>%s: admitted and denied requests over time</title>`+"\n", name)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`+"\n", left, name)
	fmt.Fprintf(&b, `<text x="%d" y="30" fill="#555555">%d/s, burst %d, max_debt %d where they apply · %d admitted, %d denied · bars of %d ms</text>`+"\n",
		left, limit.Requests, limit.Burst, limit.MaxDebt, okTotal, noTotal, binWidth/strategies.Millisecond)
	// Legend.
	fmt.Fprintf(&b, `<rect x="%d" y="8" width="10" height="10" fill="%s"/><text x="%d" y="17">admitted</text>`+"\n", width-right-150, colorOK, width-right-136)
	fmt.Fprintf(&b, `<rect x="%d" y="8" width="10" height="10" fill="%s"/><text x="%d" y="17">denied</text>`+"\n", width-right-70, colorNo, width-right-56)
	// Axes and grid.
	for v := 0; v <= ymax; v += 5 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/><text x="%d" y="%.1f" text-anchor="end">%d</text>`+"\n",
			left, y(float64(v)), width-right, y(float64(v)), left-6, y(float64(v))+4, v)
	}
	for t := int64(0); t <= duration; t += 5 * strategies.Second {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999"/><text x="%.1f" y="%d" text-anchor="middle">%ds</text>`+"\n",
			x(t), top+plotH, x(t), top+plotH+4, x(t), top+plotH+16, t/strategies.Second)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555555">time</text>`+"\n", left+plotW/2, height-4)
	fmt.Fprintf(&b, `<text x="12" y="%d" text-anchor="middle" fill="#555555" transform="rotate(-90 12 %d)">requests per bar</text>`+"\n", top+plotH/2, top+plotH/2)
	// Bars.
	bw := float64(plotW) / float64(nbins)
	for i := range ok {
		bx := x(int64(i) * binWidth)
		if ok[i] > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", bx+0.5, y(float64(ok[i])), bw-1, y(0)-y(float64(ok[i])), colorOK)
		}
		if no[i] > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", bx+0.5, y(float64(ok[i]+no[i])), bw-1, y(float64(ok[i]))-y(float64(ok[i]+no[i])), colorNo)
		}
	}
	// The limit's average rate per bar.
	perBin := float64(lim.Requests) * float64(binWidth) / float64(lim.Period)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333333" stroke-dasharray="4 3"/>`+"\n", left, y(perBin), width-right, y(perBin))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#333333">average rate</text>`+"\n", width-right-2, y(perBin)-3)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333333"/>`+"\n", left, top+plotH, width-right, top+plotH)
	b.WriteString("</svg>\n")
	return b.Bytes()
}
