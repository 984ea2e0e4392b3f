package testservers

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RunWithService is the TestMain of a package that tests the built
// envoy-rls binary: it builds ./cmd/envoy-rls into a temporary directory,
// sets *binary to its path, runs the tests and removes the directory. It
// returns the exit code for os.Exit; a failed build fails every test.
func RunWithService(m *testing.M, binary *string) int {
	dir, err := os.MkdirTemp("", "envoy-rls-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "envoy-rls")
	build := exec.Command("go", "build", "-o", *binary, "github.com/envoy-rls/envoy-rls/cmd/envoy-rls")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building envoy-rls:", err)
		return 1
	}
	return m.Run()
}

// ScrapeMetrics reads the Prometheus text at http://httpAddr/metrics and
// returns each sample's value by its full name with labels.
func ScrapeMetrics(t testing.TB, httpAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	return out
}
