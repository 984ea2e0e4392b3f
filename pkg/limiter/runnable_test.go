package limiter

import (
	"errors"
	"strings"
	"testing"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

func TestCheckStrategies(t *testing.T) {
	cfg, err := descriptors.Parse(map[string][]byte{"a.yaml": []byte(`domain: d
descriptors:
  - key: k
    rate_limit: {rate: 10/s, strategy: gcra}
    descriptors:
      - key: j
        rate_limits:
          - {rate: 10/s}
          - {rate: 5/s, strategy: gcra, burst: 2}
`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckStrategies(cfg, func(strategies.Strategy) error { return nil }); err != nil {
		t.Fatalf("all runnable: %v", err)
	}
	noGCRA := func(s strategies.Strategy) error {
		if s.Name() == "gcra" {
			return errors.New("no gcra here")
		}
		return nil
	}
	err = CheckStrategies(cfg, noGCRA)
	if err == nil || strings.Count(err.Error(), "no gcra here") != 2 || !strings.Contains(err.Error(), "a.yaml:3") {
		t.Fatalf("CheckStrategies = %v, want both gcra limits reported", err)
	}
	if err := CheckStrategies(nil, noGCRA); err != nil {
		t.Fatalf("nil config: %v", err)
	}
}
