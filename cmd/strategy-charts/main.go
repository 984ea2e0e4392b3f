// Command strategy-charts draws how each rate-limiting strategy of
// pkg/strategies treats the same bursty traffic, and writes one SVG per
// strategy, docs/img/strategy-<name>.svg, for docs/strategies.md.
//
// Usage, from the repository root:
//
//	go run ./cmd/strategy-charts [-out docs/img]
//
// The traffic is deterministic (a fixed seed), so the charts change only
// when a strategy's decisions do.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("out", "docs/img", "directory to write strategy-<name>.svg into")
	flag.Parse()
	files, err := run(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strategy-charts:", err)
		os.Exit(1)
	}
	for _, f := range files {
		fmt.Println(f)
	}
}
