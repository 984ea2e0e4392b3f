package app

import (
	"context"
	"io"
	"testing"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/settings"
)

// TestEveryStoreNameIsBuilt keeps newStore in step with the store names
// settings accepts: each one builds a store (none of them connects yet).
func TestEveryStoreNameIsBuilt(t *testing.T) {
	for _, name := range settings.StoreNames() {
		s, err := settings.ParseServe([]string{"--config", "rules.yaml", "--store", name,
			"--memcached-servers", "127.0.0.1:1", "--redis-addrs", "127.0.0.1:1"}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatalf("--store %s: %v", name, err)
		}
		st, err := newStore(context.Background(), s, zap.NewNop())
		if err != nil {
			t.Errorf("--store %s: %v", name, err)
			continue
		}
		if err := st.Close(); err != nil {
			t.Errorf("--store %s: Close: %v", name, err)
		}
	}
}
