package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command with spaces and a parenthesis, utime 250 and stime 50 ticks.
	line := []byte("1234 (redis-server (x) *:6379) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 5 0 100 0 0\n")
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Fatalf("parseStatCPU = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u s 0 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestProcCPUSelf(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's tick-granular counter moves.
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		after, err := procCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
	}
	_ = x
	p := &CPUProbe{Service: []int{os.Getpid()}}
	s := p.sample()
	// The load generator's CPU (this process) is read before the
	// service's (this process too), so it can only be the same or less.
	if s.err != nil || s.service <= 0 || s.load <= 0 || s.load > s.service {
		t.Fatalf("sample = %+v; want this process's CPU, positive, as the service's and the load generator's", s)
	}
	got := perRequest(cpuSample{}, cpuSample{service: 2 * time.Millisecond, store: time.Millisecond, load: 3 * time.Millisecond}, 1000)
	if got != (cpuPerRequest{service: 2, store: 1, load: 3}) {
		t.Fatalf("perRequest = %+v µs; want service 2, store 1, load 3", got)
	}
	if got := perRequest(cpuSample{err: os.ErrNotExist}, cpuSample{service: time.Second}, 1000); got != (cpuPerRequest{}) {
		t.Fatalf("perRequest after a failed sample = %+v; want zeros", got)
	}
}
