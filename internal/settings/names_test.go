package settings

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/envoy-rls/envoy-rls/internal/server"
)

// TestChartSchemaNames checks that the Helm chart's values.schema.json
// offers exactly the store names and failure modes the code accepts.
func TestChartSchemaNames(t *testing.T) {
	raw, err := os.ReadFile("../../helm/envoy-rls/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Enum       []string        `json:"enum"`
		Properties map[string]prop `json:"properties"`
	}
	var schema prop
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	for _, tc := range []struct {
		path []string
		want []string
	}{
		{[]string{"store", "type"}, StoreNames()},
		{[]string{"rateLimit", "failureMode"}, server.FailureModes()},
	} {
		p := schema
		for _, name := range tc.path {
			p = p.Properties[name]
		}
		if !slices.Equal(p.Enum, tc.want) {
			t.Errorf("values.schema.json %v enum = %q, want the code's list %q", tc.path, p.Enum, tc.want)
		}
	}
}

func TestStoreAndFailureModeNamesValidate(t *testing.T) {
	for _, name := range StoreNames() {
		s := validServe(t)
		s.Store = name
		s.MemcachedServers = "127.0.0.1:11211"
		if err := s.Validate(); err != nil {
			t.Errorf("--store %s: %v", name, err)
		}
	}
	for _, mode := range server.FailureModes() {
		s := validServe(t)
		s.FailureMode = mode
		if err := s.Validate(); err != nil {
			t.Errorf("--failure-mode %s: %v", mode, err)
		}
	}
}

// validServe returns the settings of `serve --config rules.yaml`.
func validServe(t *testing.T) Serve {
	t.Helper()
	s, err := ParseServe([]string{"--config", "rules.yaml"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
