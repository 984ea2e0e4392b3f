package descriptors_test

import (
	"fmt"

	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// ExampleBuild builds rules from the model, as a source without files
// (xDS) does: its problems name the domain and the descriptor path.
func ExampleBuild() {
	rpu := uint32(10)
	cfg, err := descriptors.Build([]descriptors.DomainSpec{{
		Name: "edge",
		Descriptors: []descriptors.DescriptorSpec{
			{Key: "remote_address", RateLimit: &descriptors.RateLimitSpec{Unit: "MINUTE", RequestsPerUnit: &rpu}},
		},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Dump()[0])

	_, err = descriptors.Build([]descriptors.DomainSpec{{
		Name:        "edge",
		Descriptors: []descriptors.DescriptorSpec{{Key: "path", RateLimit: &descriptors.RateLimitSpec{Unit: "fortnight", RequestsPerUnit: &rpu}}},
	}})
	fmt.Println(err)
	// Output:
	// edge.remote_address: unit=MINUTE requests_per_unit=10, shadow_mode: false, strategy: fixed_window
	// descriptors: invalid config:
	// domain "edge", descriptors[0] (key "path"): rate_limit: invalid rate limit unit "fortnight" (valid units: second, minute, hour, day, week, month, year)
}
