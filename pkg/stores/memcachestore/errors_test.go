package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/storetest"
)

func TestFaults(t *testing.T) {
	srv := testservers.Memcached(t)
	const timeout = 300 * time.Millisecond
	s := newStore(t, []string{srv.Addr}, Options{Timeout: timeout})
	defer s.Close()
	storetest.RunFaults(t, s, storetest.Faults{
		Pause:   func() { srv.Pause(); waitHung(t, srv.Addr) },
		Resume:  srv.Resume,
		Stop:    srv.Stop,
		Start:   srv.Start,
		Timeout: timeout,
	})
}

func TestErrorKinds(t *testing.T) {
	storeTimedOut, cancel := context.WithTimeoutCause(context.Background(), 0, errStoreTimeout)
	defer cancel()
	if err := ctxError(storeTimedOut, "get"); !errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("store timeout: %v, want ErrUnavailable", err)
	}
	caller, ccancel := context.WithCancel(context.Background())
	ccancel()
	inner, icancel := context.WithTimeoutCause(caller, time.Hour, errStoreTimeout)
	defer icancel()
	if err := ctxError(inner, "get"); errors.Is(err, limiter.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("caller cancelled: %v, want context.Canceled only", err)
	}
	if err := unavailable("get", "k", errMalformedKey); errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("malformed key: %v, want an internal error", err)
	}
	if err := unavailable("get", "k", fmt.Errorf("memcachestore: dial: %w", syscall.ECONNREFUSED)); !errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("connection refused: %v, want ErrUnavailable", err)
	}
	if err := contention("set", "k", 3); !errors.Is(err, limiter.ErrOverloaded) || errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("contention: %v, want ErrOverloaded", err)
	}
}
