package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// binary is the envoy-rls binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) { os.Exit(testservers.RunWithService(m, &binary)) }

// TestConformance replays every case of testdata/*.yaml against the
// built binary on each store: the memory store, one Redis and one
// Memcached (started here and shared by the cases, each under a key
// prefix of its own).
func TestConformance(t *testing.T) {
	cases := readCases(t)
	stores := []struct {
		name  string
		flags func(t *testing.T) []string
	}{
		{"memory", func(*testing.T) []string { return []string{"--store", "memory"} }},
		{"redis", func(t *testing.T) []string {
			r := testservers.Redis(t)
			return []string{"--store", "redis", "--redis-url", "redis://" + r.Addr}
		}},
		{"memcached", func(t *testing.T) []string {
			m := testservers.Memcached(t)
			return []string{"--store", "memcached", "--memcached-servers", m.Addr}
		}},
	}
	var mu sync.Mutex
	passed := map[string]int{}
	steps := 0
	for _, c := range cases {
		steps += len(c.Steps)
	}
	// The stores run side by side (each case mostly waits for a process
	// to start); the group returns when all are done.
	t.Run("store", func(t *testing.T) {
		for _, st := range stores {
			t.Run(st.name, func(t *testing.T) {
				t.Parallel()
				flags := st.flags(t)
				for i, c := range cases {
					if len(c.Stores) > 0 && !contains(c.Stores, st.name) {
						continue
					}
					t.Run(c.Name, func(t *testing.T) {
						n := c.run(t, append(flags, "--key-prefix", fmt.Sprintf("conf%d-%d:", i, time.Now().UnixNano())))
						mu.Lock()
						passed[st.name] += n
						mu.Unlock()
					})
				}
			})
		}
	})
	diffs := 0
	for _, c := range cases {
		for _, s := range c.Steps {
			if s.Difference != "" {
				diffs++
			}
		}
	}
	t.Logf("%d cases, %d steps transcribed (%d with a deliberate difference); steps passed: memory %d, redis %d, memcached %d",
		len(cases), steps, diffs, passed["memory"], passed["redis"], passed["memcached"])
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Case is one transcribed test of the reference: its config files, the
// extra serve flags it needs, and a sequence of steps.
type Case struct {
	Name   string            `yaml:"name"`
	Source string            `yaml:"source"` // the reference's test it transcribes
	Flags  []string          `yaml:"flags"`
	Config map[string]string `yaml:"config"` // file name → YAML
	// Window is the shortest window the steps rely on staying in
	// (second, minute, hour, day): the case waits until enough of it is
	// left before it starts.
	Window string   `yaml:"window"`
	Stores []string `yaml:"stores"` // only these stores (default all)
	Steps  []Step   `yaml:"steps"`
}

// Step is one request (repeated Repeat times) and what it must answer, or
// a check of the health service or of the metrics.
type Step struct {
	Request *Request `yaml:"request"`
	Repeat  int      `yaml:"repeat"`
	// Overall is the expected overall_code (OK or OVER_LIMIT); empty means
	// OVER_LIMIT when a status is, else OK.
	Overall  string   `yaml:"overall"`
	Statuses []Status `yaml:"statuses"`
	// Headers are the exact response_headers_to_add; "reset" as a value
	// means the first limited status's duration_until_reset.
	Headers map[string]string `yaml:"headers"`
	// Metadata is the exact dynamic_metadata as JSON ("null": none).
	Metadata string `yaml:"metadata"`
	// Error is the expected gRPC status code of a refused request.
	Error string `yaml:"error"`
	// Health lists service names that must answer SERVING.
	Health []string `yaml:"health"`
	// Metrics are series (name{labels}) and their values on /metrics.
	Metrics map[string]float64 `yaml:"metrics"`
	// Difference documents why envoy-rls answers differently from the
	// reference here, on purpose; Reference is what the reference answers.
	Difference string `yaml:"difference"`
	Reference  string `yaml:"reference"`
}

// Request is a ShouldRateLimit request: descriptors as lists of
// "key=value" entries.
type Request struct {
	Domain      string       `yaml:"domain"`
	Descriptors []Descriptor `yaml:"descriptors"`
	HitsAddend  uint32       `yaml:"hits_addend"`
}

// Descriptor is one request descriptor.
type Descriptor struct {
	Entries []string `yaml:"entries"`
	Hits    *uint64  `yaml:"hits"`  // the descriptor's own hits_addend
	Limit   string   `yaml:"limit"` // an override, "10/DAY"
}

// UnmarshalYAML accepts a plain list of entries as a descriptor.
func (d *Descriptor) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		return n.Decode(&d.Entries)
	}
	type plain Descriptor
	return n.Decode((*plain)(d))
}

// Status is one expected descriptor status.
type Status struct {
	Code string `yaml:"code"`
	// Limit is "50/SECOND" for a current_limit, empty for none.
	Limit     string `yaml:"limit"`
	Name      string `yaml:"name"`
	Remaining int64  `yaml:"remaining"`
	// Step is added to Remaining at each repetition of the request.
	Step int64 `yaml:"step"`
}

func readCases(t *testing.T) []*Case {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	sort.Strings(files)
	var out []*Case
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cs []*Case
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, cs...)
	}
	return out
}

var unitSeconds = map[string]int64{"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800, "MONTH": 2592000, "YEAR": 31536000}

// run replays c on a new envoy-rls with storeFlags and returns the
// number of steps that passed.
func (c *Case) run(t *testing.T, storeFlags []string) int {
	dir := t.TempDir()
	for name, data := range c.Config {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--config", dir}, storeFlags...)
	p := start(t, append(args, c.Flags...))
	waitForWindow(c.Window)
	conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := rlsv3.NewRateLimitServiceClient(conn)
	passed := 0
	for i, s := range c.Steps {
		where := fmt.Sprintf("step %d", i)
		if s.Difference != "" {
			t.Logf("%s: deliberate difference: %s", where, s.Difference)
		}
		failedBefore := t.Failed()
		switch {
		case s.Request != nil:
			for r := 0; r < max(s.Repeat, 1); r++ {
				s.check(t, client, fmt.Sprintf("%s, request %d", where, r), r)
			}
		case len(s.Health) > 0:
			hc := healthpb.NewHealthClient(conn)
			for _, name := range s.Health {
				resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
				if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("%s: health %q: %v %v", where, name, resp, err)
				}
			}
		case len(s.Metrics) > 0:
			got := testservers.ScrapeMetrics(t, p.HTTPAddr)
			for series, want := range s.Metrics {
				if got[series] != want {
					t.Errorf("%s: %s = %v, want %v", where, series, got[series], want)
				}
			}
		default:
			t.Fatalf("%s: a step needs request, health or metrics", where)
		}
		if !t.Failed() || failedBefore {
			passed++
		}
	}
	return passed
}

// check sends the step's request (repetition r) and compares the answer.
func (s *Step) check(t *testing.T, client rlsv3.RateLimitServiceClient, where string, r int) {
	t.Helper()
	req, err := s.Request.proto()
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.ShouldRateLimit(ctx, req)
	if s.Error != "" {
		if got := status.Code(err).String(); got != s.Error {
			t.Errorf("%s: error %v, want %s", where, err, s.Error)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	now := time.Now().Unix()
	overall := s.Overall
	if overall == "" {
		overall = "OK"
		for _, st := range s.Statuses {
			if st.Code == "OVER_LIMIT" {
				overall = "OVER_LIMIT"
			}
		}
	}
	if resp.OverallCode.String() != overall {
		t.Errorf("%s: overall %v, want %s", where, resp.OverallCode, overall)
	}
	if len(resp.Statuses) != len(s.Statuses) {
		t.Fatalf("%s: %d statuses, want %d: %v", where, len(resp.Statuses), len(s.Statuses), resp)
	}
	firstReset := int64(-1)
	for i, want := range s.Statuses {
		got := resp.Statuses[i]
		if got.Code.String() != want.Code {
			t.Errorf("%s: status %d code %v, want %s", where, i, got.Code, want.Code)
		}
		if rem := want.Remaining + want.Step*int64(r); int64(got.LimitRemaining) != rem {
			t.Errorf("%s: status %d remaining %d, want %d", where, i, got.LimitRemaining, rem)
		}
		if want.Limit == "" {
			if got.CurrentLimit != nil || got.DurationUntilReset != nil {
				t.Errorf("%s: status %d has a limit %v / reset %v, want none", where, i, got.CurrentLimit, got.DurationUntilReset)
			}
			continue
		}
		rpu, unit, _ := strings.Cut(want.Limit, "/")
		cl := got.CurrentLimit
		if cl == nil || strconv.FormatUint(uint64(cl.RequestsPerUnit), 10) != rpu || cl.Unit.String() != unit || cl.Name != want.Name {
			t.Errorf("%s: status %d limit %v, want %s name %q", where, i, cl, want.Limit, want.Name)
			continue
		}
		// duration_until_reset is the end of the epoch-aligned window,
		// in whole seconds, as the reference computes it from its clock.
		period := unitSeconds[unit]
		reset := got.DurationUntilReset.GetSeconds()
		if wantReset := period - now%period; reset < wantReset-2 || reset > wantReset+2 || reset <= 0 || reset > period {
			t.Errorf("%s: status %d reset %ds, want %ds (±2) within (0, %d]", where, i, reset, wantReset, period)
		}
		if firstReset < 0 {
			firstReset = reset
		}
	}
	if s.Headers != nil {
		got := map[string]string{}
		for _, h := range resp.ResponseHeadersToAdd {
			got[h.Key] = h.Value
		}
		want := map[string]string{}
		for k, v := range s.Headers {
			if v == "reset" {
				v = strconv.FormatInt(firstReset, 10)
			}
			want[k] = v
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: headers %v, want %v", where, got, want)
		}
	}
	if s.Metadata != "" {
		got := "null"
		if resp.DynamicMetadata != nil {
			b, err := json.Marshal(resp.DynamicMetadata.AsMap())
			if err != nil {
				t.Fatal(err)
			}
			got = string(b)
		}
		var w any
		if err := json.Unmarshal([]byte(s.Metadata), &w); err != nil {
			t.Fatalf("%s: metadata in the case: %v", where, err)
		}
		want, _ := json.Marshal(w)
		if got != string(want) {
			t.Errorf("%s: dynamic metadata\n got %s\nwant %s", where, got, want)
		}
	}
}

// proto builds the gRPC request.
func (r *Request) proto() (*rlsv3.RateLimitRequest, error) {
	out := &rlsv3.RateLimitRequest{Domain: r.Domain, HitsAddend: r.HitsAddend}
	for _, d := range r.Descriptors {
		pd := &rlcommon.RateLimitDescriptor{}
		for _, e := range d.Entries {
			k, v, ok := strings.Cut(e, "=")
			if !ok {
				return nil, fmt.Errorf("entry %q: want key=value", e)
			}
			pd.Entries = append(pd.Entries, &rlcommon.RateLimitDescriptor_Entry{Key: k, Value: v})
		}
		if d.Hits != nil {
			pd.HitsAddend = wrapperspb.UInt64(*d.Hits)
		}
		if d.Limit != "" {
			rpu, unit, _ := strings.Cut(d.Limit, "/")
			n, err := strconv.ParseUint(rpu, 10, 32)
			u, ok := typev3.RateLimitUnit_value[unit]
			if err != nil || !ok {
				return nil, fmt.Errorf("limit %q: want N/UNIT", d.Limit)
			}
			pd.Limit = &rlcommon.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: uint32(n), Unit: typev3.RateLimitUnit(u)}
		}
		out.Descriptors = append(out.Descriptors, pd)
	}
	return out, nil
}

// waitForWindow sleeps, when needed, so that the case's steps (a few
// seconds at most) stay in one window of the given unit.
func waitForWindow(unit string) {
	var period, margin time.Duration
	switch strings.ToUpper(unit) {
	case "", "HOUR", "DAY":
		period, margin = time.Hour, time.Minute
	case "SECOND":
		period, margin = time.Second, 600*time.Millisecond
	case "MINUTE":
		period, margin = time.Minute, 10*time.Second
	}
	left := period - time.Duration(time.Now().UnixNano()%int64(period))
	if left < margin {
		time.Sleep(left + 100*time.Millisecond)
	}
}

// start runs `envoy-rls serve` with args on free loopback ports and
// waits until its health is SERVING; it is stopped when t ends, and its
// output is logged if t failed.
func start(t *testing.T, args []string) *testservers.Service {
	t.Helper()
	// A generous store timeout: the machine may be busy, and timeouts are
	// not what these cases are about.
	all := append([]string{"--log-format", "console", "--log-level", "warn", "--store-timeout", "5s"}, args...)
	return testservers.Serve(t, testservers.ServeOptions{Binary: binary, Args: all})
}
