package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ),
// 100 per second on every Linux architecture Go supports.
const clockTicks = 100

// CPUProbe names the processes whose CPU time a load run reads from
// /proc before and after its measured part, to report CPU per request:
// the rate-limit service under test and its store's servers. The load
// generator's own process (this one) is read too. The zero value reads
// nothing but this process.
type CPUProbe struct {
	Service []int // PIDs of the service (envoy-rls, the reference or the no-op server)
	Store   []int // PIDs of the store's servers (redis-server nodes, memcached)
}

// cpuSample is the CPU time used so far by a probe's processes.
type cpuSample struct {
	service, store, load time.Duration
	err                  error
}

// sample reads the CPU time of p's processes.
func (p *CPUProbe) sample() cpuSample {
	var s cpuSample
	if p == nil {
		return s
	}
	s.load, s.err = procCPU(os.Getpid())
	for _, pid := range p.Service {
		d, err := procCPU(pid)
		s.service += d
		s.err = errors.Join(s.err, err)
	}
	for _, pid := range p.Store {
		d, err := procCPU(pid)
		s.store += d
		s.err = errors.Join(s.err, err)
	}
	return s
}

// procCPU returns the CPU time (user and system) that process pid has
// used, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("rls-bench: cpu of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU returns utime+stime of a /proc/PID/stat line. The second
// field (the command) is in parentheses and may hold spaces, so fields are
// counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("rls-bench: /proc stat line without a command")
	}
	f := bytes.Fields(b[i+1:])
	// After the command: state (field 3), ..., utime (14), stime (15).
	if len(f) < 13 {
		return 0, fmt.Errorf("rls-bench: /proc stat line has %d fields after the command", len(f))
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("rls-bench: /proc stat times: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// cpuPerRequest is the CPU microseconds per request of the service, its
// store's servers and the load generator over a run's measured part.
type cpuPerRequest struct{ service, store, load float64 }

// perRequest returns the CPU microseconds per request of the difference
// between two samples; all are 0 when a sample failed or no request was
// made.
func perRequest(before, after cpuSample, requests uint64) cpuPerRequest {
	if before.err != nil || after.err != nil || requests == 0 {
		return cpuPerRequest{}
	}
	n := float64(requests)
	return cpuPerRequest{
		service: micros(after.service-before.service) / n,
		store:   micros(after.store-before.store) / n,
		load:    micros(after.load-before.load) / n,
	}
}
