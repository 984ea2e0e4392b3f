package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// TestRun runs the program into a temporary directory and checks that it
// writes one well-formed SVG per strategy.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	files, err := run(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(strategies.Names()) {
		t.Fatalf("wrote %d files for %d strategies", len(files), len(strategies.Names()))
	}
	for _, name := range strategies.Names() {
		path := filepath.Join(dir, "strategy-"+name+".svg")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		root, rects := parseSVG(t, data)
		if root != "svg" {
			t.Errorf("%s: root element %q, want svg", path, root)
		}
		if rects < 3 {
			t.Errorf("%s: %d rects, want bars", path, rects)
		}
		if !bytes.Contains(data, []byte(">"+name+"<")) {
			t.Errorf("%s: the chart does not name its strategy", path)
		}
	}
}

// TestChartsUpToDate compares the committed charts in docs/img with what
// the program draws now, so that a change of a strategy's decisions
// cannot leave docs/strategies.md showing the old behaviour.
func TestChartsUpToDate(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range strategies.Names() {
		file := "strategy-" + name + ".svg"
		committed, err := os.ReadFile(filepath.Join("..", "..", "docs", "img", file))
		if err != nil {
			t.Errorf("docs/img/%s: %v; run `go run ./cmd/strategy-charts` from the repository root", file, err)
			continue
		}
		fresh, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(committed, fresh) {
			t.Errorf("docs/img/%s is stale; run `go run ./cmd/strategy-charts` from the repository root", file)
		}
	}
}

// TestTrafficDeterministic checks that the simulated traffic is sorted,
// within the simulation and the same on every call.
func TestTrafficDeterministic(t *testing.T) {
	a, b := traffic(), traffic()
	if len(a) != len(b) || len(a) < burstSize {
		t.Fatalf("traffic lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d at %d, then at %d", i, a[i], b[i])
		}
		if a[i] < 0 || a[i] >= duration || (i > 0 && a[i] < a[i-1]) {
			t.Fatalf("request %d at %d: unsorted or outside [0, %d)", i, a[i], duration)
		}
	}
}

// parseSVG decodes data with encoding/xml and returns the name of its root
// element and the number of rect elements; it fails t on malformed XML.
func parseSVG(t *testing.T, data []byte) (root string, rects int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("malformed SVG: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if root != "" {
					t.Fatalf("second root element %q", el.Name.Local)
				}
				root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", el.Name.Space)
				}
			}
			if el.Name.Local == "rect" {
				rects++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements")
	}
	return root, rects
}
