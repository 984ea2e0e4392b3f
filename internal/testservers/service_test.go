package testservers

import "testing"

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics([]byte("# HELP x y\n# TYPE x gauge\nenvoy_rls_memory_store_keys 42\ngo_memstats_heap_inuse_bytes 1.5e+06\nx{a=\"b c\"} 3\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m["envoy_rls_memory_store_keys"] != 42 || m["go_memstats_heap_inuse_bytes"] != 1.5e6 || m[`x{a="b c"}`] != 3 {
		t.Errorf("metrics %v", m)
	}
	for _, bad := range []string{"novalue\n", "x notanumber\n"} {
		if _, err := ParseMetrics([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
