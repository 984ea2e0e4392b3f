package main

import "testing"

func TestReferenceMode(t *testing.T) {
	cases := []struct {
		argv0 string
		args  []string
		want  bool
	}{
		{"/bin/ratelimit", nil, true},
		{"/envoy-rls", nil, true},
		{"envoy-rls", []string{"serve", "--config", "x"}, false},
		{"/bin/ratelimit", []string{"version"}, false},
		{"/bin/ratelimit", []string{"healthcheck", "--addr", "127.0.0.1:8081"}, false},
		{"/bin/ratelimit", []string{"-config", "x"}, true},
		{"/envoy-rls", []string{"-config", "x"}, false},
		{"ratelimit.exe", []string{"whatever"}, true},
	}
	for _, c := range cases {
		if got := referenceMode(c.argv0, c.args); got != c.want {
			t.Errorf("referenceMode(%q, %q) = %v, want %v", c.argv0, c.args, got, c.want)
		}
	}
}
