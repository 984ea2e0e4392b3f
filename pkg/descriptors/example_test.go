package descriptors_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

func Example() {
	dir, err := os.MkdirTemp("", "rls-config")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	config := `
domain: edge
descriptors:
  - key: remote_address
    exempt: ["10.0.0.0/8"]
    rate_limit:
      rate: 100/min
  - key: remote_address
    value: 50.0.0.5
    rate_limit:
      unit: second
      requests_per_unit: 0
  - key: path
    value: /api/*
    rate_limit:
      rate: 10/5s
      strategy: gcra
      burst: 5
`
	if err := os.WriteFile(filepath.Join(dir, "edge.yaml"), []byte(config), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := descriptors.Load(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	edge := cfg.Domain("edge")
	for _, e := range []descriptors.Entry{
		{Key: "remote_address", Value: "1.2.3.4"},
		{Key: "remote_address", Value: "50.0.0.5"},
		{Key: "remote_address", Value: "10.1.2.3"},
		{Key: "path", Value: "/api/users"},
		{Key: "path", Value: "/health"},
	} {
		rule, exempt := edge.Match([]descriptors.Entry{e})
		if rule == nil {
			fmt.Printf("%s=%s: no limit\n", e.Key, e.Value)
			continue
		}
		l := rule.Limits[0]
		fmt.Printf("%s=%s: %s %d per %d %s (%s), exempt %v\n", e.Key, e.Value, rule.Path,
			l.RequestsPerUnit, l.UnitMultiplier, l.Unit, l.Strategy.Name(), exempt)
	}
	// Output:
	// remote_address=1.2.3.4: edge.remote_address 100 per 1 MINUTE (fixed_window), exempt false
	// remote_address=50.0.0.5: edge.remote_address_50.0.0.5 0 per 1 SECOND (fixed_window), exempt false
	// remote_address=10.1.2.3: edge.remote_address 100 per 1 MINUTE (fixed_window), exempt true
	// path=/api/users: edge.path_/api/* 10 per 5 SECOND (gcra), exempt false
	// path=/health: no limit
}
