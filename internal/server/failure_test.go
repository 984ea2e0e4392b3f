package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/envoy-rls/envoy-rls/internal/telemetry"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// errStore fails every call with err.
type errStore struct{ err error }

func (s errStore) Apply(context.Context, int64, []limiter.Op, []strategies.Decision) error {
	return s.err
}
func (errStore) Close() error { return nil }

// lateStore never answers: it waits for its context and records the
// deadline it had.
type lateStore struct {
	mu       sync.Mutex
	deadline time.Time
}

func (s *lateStore) Apply(ctx context.Context, _ int64, _ []limiter.Op, _ []strategies.Decision) error {
	s.mu.Lock()
	s.deadline, _ = ctx.Deadline()
	s.mu.Unlock()
	<-ctx.Done()
	return fmt.Errorf("waiting for the store: %w", ctx.Err())
}
func (*lateStore) Close() error { return nil }

var oneReq = &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*rlcommon.RateLimitDescriptor{desc("k", "v")}}

// The failure mode answers only for an unavailable store or a shed call;
// client errors are INVALID_ARGUMENT and internal errors INTERNAL in every
// mode.
func TestFailureModeOnlyForStoreTrouble(t *testing.T) {
	down := fmt.Errorf("redisstore: connection refused: %w", limiter.ErrUnavailable)
	shed := fmt.Errorf("admission: %w: heavy request shed", limiter.ErrOverloaded)
	client := fmt.Errorf("limiter: descriptor 0: %w: window overflows", limiter.ErrInvalidRequest)
	internal := errors.New("memory: malformed state under key k")
	for _, tc := range []struct {
		name    string
		err     error
		mode    string
		code    codes.Code // codes.OK: answered per the failure mode
		message string
	}{
		{"down/error", down, FailError, codes.Unavailable, "store unavailable"},
		{"down/allow", down, FailAllow, codes.OK, ""},
		{"shed/error", shed, FailError, codes.Unavailable, "overloaded"},
		{"shed/deny", shed, FailDeny, codes.OK, ""},
		{"client/error", client, FailError, codes.InvalidArgument, "window overflows"},
		{"client/allow", client, FailAllow, codes.InvalidArgument, "window overflows"},
		{"internal/error", internal, FailError, codes.Internal, "malformed state"},
		{"internal/allow", internal, FailAllow, codes.Internal, "malformed state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var modes []string
			c, _, _ := serve(t, errStore{tc.err}, Options{FailureMode: tc.mode, OnFailureMode: func(m string) { modes = append(modes, m) }})
			resp, err := c.ShouldRateLimit(context.Background(), oneReq)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code %v, want %v (%v)", got, tc.code, err)
			}
			if tc.code == codes.OK {
				if resp == nil || len(modes) != 1 {
					t.Fatalf("answer %v, failure-mode decisions %v", resp, modes)
				}
				return
			}
			if len(modes) != 0 || !strings.Contains(status.Convert(err).Message(), tc.message) {
				t.Fatalf("decisions %v, message %q, want it to name %q", modes, status.Convert(err).Message(), tc.message)
			}
		})
	}
}

// A store that does not answer is given up on a margin before the
// caller's deadline, so that the failure mode's answer reaches the caller
// in time.
func TestStoreCallEndsBeforeTheCallersDeadline(t *testing.T) {
	st := &lateStore{}
	c, _, _ := serve(t, st, Options{FailureMode: FailAllow, DeadlineMargin: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.ShouldRateLimit(ctx, oneReq)
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("answer %v, error %v; want OK per the failure mode", resp, err)
	}
	callerDeadline, _ := ctx.Deadline()
	st.mu.Lock()
	storeDeadline := st.deadline
	st.mu.Unlock()
	if gap := callerDeadline.Sub(storeDeadline); gap < 900*time.Millisecond {
		t.Fatalf("store deadline only %v before the caller's", gap)
	}
}

// In the error mode the late store is UNAVAILABLE naming the deadline.
func TestLateStoreInErrorMode(t *testing.T) {
	c, _, _ := serve(t, &lateStore{}, Options{DeadlineMargin: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := c.ShouldRateLimit(ctx, oneReq)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("error %v", err)
	}
}

// A failure-mode answer counts as an error in the request metrics, so that
// the "store is failing" alert fires whatever the mode.
func TestFailureModeCountsAsError(t *testing.T) {
	m := telemetry.New(telemetry.Options{})
	down := fmt.Errorf("connection refused: %w", limiter.ErrUnavailable)
	c, _, _ := serve(t, errStore{down}, Options{FailureMode: FailAllow, Metrics: m})
	for range 3 {
		if _, err := c.ShouldRateLimit(context.Background(), oneReq); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`envoy_rls_request_duration_seconds_count{result="error"} 3`,
		`envoy_rls_failure_mode_decisions_total{mode="allow"} 3`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
