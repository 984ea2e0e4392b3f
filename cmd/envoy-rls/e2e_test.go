package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// binary is the envoy-rls binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	if out := os.Getenv(peakRSSEnv); out != "" {
		os.Exit(runMeasured(out, os.Args[1:]))
	}
	os.Exit(testservers.RunWithService(m, &binary))
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	addrs, err := testservers.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

// serveWith runs `envoy-rls serve` as o describes, with the built binary and
// console logs (o.Args may ask for others), and waits until its health
// is SERVING; the test stops it at its end and logs its output if it
// failed.
func serveWith(t *testing.T, o testservers.ServeOptions) *testservers.Service {
	t.Helper()
	o.Binary = binary
	o.Args = append([]string{"--log-format", "console"}, o.Args...)
	return testservers.Serve(t, o)
}

// startServe runs `envoy-rls serve` with env and args on free ports (see
// serveWith).
func startServe(t *testing.T, env []string, args ...string) *testservers.Service {
	t.Helper()
	return serveWith(t, testservers.ServeOptions{Env: env, Args: args})
}

// startServeCreds is startServe with the transport credentials the health
// probe dials with.
func startServeCreds(t *testing.T, creds credentials.TransportCredentials, env []string, args ...string) *testservers.Service {
	t.Helper()
	return serveWith(t, testservers.ServeOptions{Env: env, Args: args, Creds: creds})
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	return dialCreds(t, addr, insecure.NewCredentials())
}

func dialCreds(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func entries(kv ...string) []*rlcommon.RateLimitDescriptor_Entry {
	var es []*rlcommon.RateLimitDescriptor_Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, &rlcommon.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return es
}

func request(domain string, kvs ...[]string) *rlsv3.RateLimitRequest {
	r := &rlsv3.RateLimitRequest{Domain: domain}
	for _, kv := range kvs {
		r.Descriptors = append(r.Descriptors, &rlcommon.RateLimitDescriptor{Entries: entries(kv...)})
	}
	return r
}

// awayFromBoundary waits, if needed, so that the next few seconds stay in
// one aligned window of the given length.
func awayFromBoundary(period time.Duration) {
	now := time.Now()
	left := period - time.Duration(now.UnixNano()%int64(period))
	if left < 3*time.Second {
		time.Sleep(left + 50*time.Millisecond)
	}
}

func TestServeEndToEnd(t *testing.T) {
	p := startServe(t, nil, "--config", "../../examples/ratelimit.yaml")
	client := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
	ctx := context.Background()

	t.Run("fixed window agrees with the reference", func(t *testing.T) {
		awayFromBoundary(time.Minute)
		for i := 1; i <= 6; i++ {
			resp, err := client.ShouldRateLimit(ctx, request("edge", []string{"path", "/api/login"}))
			if err != nil {
				t.Fatal(err)
			}
			st := resp.Statuses[0]
			wantCode, wantRemaining := rlsv3.RateLimitResponse_OK, uint32(5-i)
			if i == 6 {
				wantCode, wantRemaining = rlsv3.RateLimitResponse_OVER_LIMIT, 0
			}
			if resp.OverallCode != wantCode || st.Code != wantCode || st.LimitRemaining != wantRemaining {
				t.Fatalf("request %d: overall %v, status %v, remaining %d; want %v, %d", i, resp.OverallCode, st.Code, st.LimitRemaining, wantCode, wantRemaining)
			}
			cl := st.CurrentLimit
			if cl.GetName() != "login" || cl.GetRequestsPerUnit() != 5 || cl.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE {
				t.Fatalf("request %d: current_limit %v", i, cl)
			}
			if d := st.DurationUntilReset.AsDuration(); d <= 0 || d > time.Minute {
				t.Fatalf("request %d: duration_until_reset %v", i, d)
			}
		}
	})

	t.Run("several descriptors, tightest and unmatched", func(t *testing.T) {
		resp, err := client.ShouldRateLimit(ctx, request("edge",
			[]string{"remote_address", "192.168.10.10"},
			[]string{"remote_address", "10.1.2.3"},
			[]string{"no_such_key", "x"},
			[]string{"path", "/api/items"}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.OverallCode != rlsv3.RateLimitResponse_OK || len(resp.Statuses) != 4 {
			t.Fatalf("response %v", resp)
		}
		if s := resp.Statuses[0]; s.LimitRemaining != 4294967295 || s.CurrentLimit != nil {
			t.Errorf("unlimited: %v", s)
		}
		for _, i := range []int{1, 2} {
			if s := resp.Statuses[i]; s.CurrentLimit != nil || s.LimitRemaining != 0 || s.Code != rlsv3.RateLimitResponse_OK {
				t.Errorf("status %d: want OK without a limit, got %v", i, s)
			}
		}
		if s := resp.Statuses[3]; s.CurrentLimit.GetRequestsPerUnit() != 50 || s.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_SECOND {
			t.Errorf("wildcard path: %v", s)
		}
	})

	t.Run("unknown domain has no limit", func(t *testing.T) {
		resp, err := client.ShouldRateLimit(ctx, request("nope", []string{"path", "/api/login"}))
		if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].CurrentLimit != nil {
			t.Fatalf("got %v, %v", resp, err)
		}
	})

	t.Run("malformed requests are INVALID_ARGUMENT", func(t *testing.T) {
		for name, req := range map[string]*rlsv3.RateLimitRequest{
			"domain is empty":     request("", []string{"a", "b"}),
			"no descriptors":      {Domain: "edge"},
			"has no entries":      {Domain: "edge", Descriptors: []*rlcommon.RateLimitDescriptor{{}}},
			"has an empty key":    request("edge", []string{"", "b"}),
			"more than the limit": request("edge", make([][]string, 65)...),
		} {
			_, err := client.ShouldRateLimit(ctx, req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), name) {
				t.Errorf("%s: got %v", name, err)
			}
		}
	})

	t.Run("HTTP endpoints", func(t *testing.T) {
		get := func(path string) (int, string) {
			resp, err := http.Get("http://" + p.HTTPAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get("/healthcheck"); code != 200 || body != "OK" {
			t.Errorf("/healthcheck: %d %q", code, body)
		}
		if code, body := get("/rlconfig"); code != 200 || !strings.Contains(body, "edge.path_/api/login") {
			t.Errorf("/rlconfig: %d %q", code, body)
		}
		post := func(body string) (int, string) {
			resp, err := http.Post("http://"+p.HTTPAddr+"/json", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		// The login path is over its limit from the first subtest.
		if code, body := post(`{"domain":"edge","descriptors":[{"entries":[{"key":"path","value":"/api/login"}]}]}`); code != 429 || !strings.Contains(body, "OVER_LIMIT") {
			t.Errorf("/json over limit: %d %s", code, body)
		}
		if code, body := post(`{"domain":"edge","descriptors":[{"entries":[{"key":"user_id","value":"u1"}]}]}`); code != 200 || !strings.Contains(body, `"overallCode":"OK"`) {
			t.Errorf("/json ok: %d %s", code, body)
		}
		if code, _ := post(`{"domain":`); code != 400 {
			t.Errorf("/json malformed: %d", code)
		}
		if code, body := post(`{"domain":"edge"}`); code != 400 || !strings.Contains(body, "no descriptors") {
			t.Errorf("/json invalid: %d %s", code, body)
		}
	})

	t.Run("SIGTERM drains and exits 0", func(t *testing.T) {
		if err := p.StopWithin(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServeFromEnvironment(t *testing.T) {
	// Flags absent: the environment sets the config; a flag wins over its
	// variable (the log format given by flag is console, env says json).
	p := startServe(t, []string{"ENVOY_RLS_CONFIG=../../examples/ratelimit.yaml", "ENVOY_RLS_LOG_FORMAT=bogus"})
	client := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
	resp, err := client.ShouldRateLimit(context.Background(), request("edge", []string{"user_id", "env"}))
	if err != nil || resp.Statuses[0].CurrentLimit == nil {
		t.Fatalf("got %v, %v", resp, err)
	}
}

func TestServeRefusesBadSettingsAndConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("domain: \"\"\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		code int
		want []string
	}{
		"missing config": {[]string{"serve"}, 2, []string{"--config is required"}},
		"bad log level":  {[]string{"serve", "--config", "x", "--log-level", "loud", "--log-format", "xml"}, 2, []string{"--log-level", "--log-format"}},
		"bad config":     {[]string{"serve", "--config", bad, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, 1, []string{"domain", "fortnight"}},
		"validate bad":   {[]string{"validate", bad}, 1, []string{"domain", "fortnight"}},
		"unknown":        {[]string{"frobnicate"}, 2, []string{"unknown command"}},
	} {
		out, err := exec.Command(binary, tc.args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s", name, code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output lacks %q:\n%s", name, w, out)
			}
		}
	}
}

func TestValidateAndVersion(t *testing.T) {
	out, err := exec.Command(binary, "validate", "../../examples/ratelimit.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `domain "edge"`) {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "envoy-rls ") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}

// grpcurl-style clients find the service and its messages by reflection.
func TestReflection(t *testing.T) {
	p := startServe(t, nil, "--config", "../../examples/ratelimit.yaml")
	stream, err := reflectionpb.NewServerReflectionClient(dial(t, p.GRPCAddr)).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	found := false
	for _, s := range resp.GetListServicesResponse().GetService() {
		found = found || s.Name == "envoy.service.ratelimit.v3.RateLimitService"
	}
	if !found {
		t.Fatalf("services: %v", resp)
	}
	resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "envoy.service.ratelimit.v3.RateLimitRequest"}})
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("no descriptor for RateLimitRequest: %v", resp)
	}
}
