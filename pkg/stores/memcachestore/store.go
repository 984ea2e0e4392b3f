// Package memcachestore is a limiter.Store backed by one or more memcached
// servers (1.6 or later: it speaks the meta protocol, see client.go).
//
// Memcached runs no scripts: the store reads the states of a request's
// keys, decides the request in Go with limiter.Stage (the all-or-nothing
// rule of limiter.Store, written once for every store), and writes back
// what changed.
//
// fixed_window (the default strategy) keeps one decimal counter per key
// and window, under a memcached key holding the window start (see
// windowKey), which expires with the window: the store increments it by
// the hits of the request's ops that can fit (creating it when missing),
// so that the count before the incr is the state Stage decides from, and
// gives back with a decr what Stage did not keep (see fastpath.go). A
// request whose now lies in an earlier window than an op this Store
// admitted on a key of the same lock stripe (a clock that went back)
// looks for a later window of its key holding hits, up to 32 windows
// back, and counts there, as Step does; a clock that went back further,
// or a later window written only by another replica, counts in the window
// of its own now. This layout is not the one of the compare-and-swap path
// below: fixed_window states stored by earlier versions of this package
// are ignored (each key starts a fresh window once on upgrade).
//
// Every other strategy keeps its encoded state under its own key, written
// by compare-and-swap (add for a missing key). The incr of the counters
// and the reads of the other keys of a request go out together; then the
// decrements and the writes. A write that loses a race re-reads its key
// and the request is decided again from the new state (the keys already
// written keep their decisions); the number of retries is bounded, and
// running out of them is an error, never an allow. When a request that
// was admitted is vetoed by such a re-read, or fails part way, the store
// gives back what it consumed on the keys it wrote (limiter.Unstage) and
// on the counters.
//
// Keys are spread over the servers by client-side hashing (CRC-32 of the
// key modulo the number of servers, as gomemcache's ServerList does), so
// every replica of envoy-rls must list the same servers in the same order.
//
// Within one Store, calls that touch the same compare-and-swap keys wait
// for each other on local striped locks, so compare-and-swap races happen
// only between processes; a hot key then costs one read and one write per
// request instead of a storm of retries. fixed_window counters take no
// local lock.
//
// Memcached keys are limited to 250 bytes without whitespace or control
// characters, while store keys hold arbitrary client values: such keys
// (and keys containing '~') are stored under a readable prefix plus the
// SHA-256 of the key (see memcacheKey in keys.go). States are stored in a
// compact versioned binary encoding (varints), with an expiration of the
// strategy's TTL rounded up to whole seconds plus one second for
// memcached's clock granularity; TTLs beyond 30 days are sent as absolute
// Unix times computed from the now of the call, so they need the clocks of
// the service and of memcached to agree. A state whose TTL is 0 is deleted
// (by a delete conditional on its CAS id) or not written.
//
// The commands of one phase of a request (all its incrs and reads, then
// all its decrements and writes) go to each server in one pipelined
// write, together with those of the other requests waiting for that
// server, on a few connections per server (see client.go): a request
// costs one round trip per phase and server, not one per key.
package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/stores/internal/window"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Millisecond
	DefaultConnections = 1
	DefaultMaxRetries  = 16
)

// ErrClosed is wrapped by the error of Apply and Ping after Close.
var ErrClosed = errors.New("memcachestore: store closed")

// ErrContention is wrapped (together with limiter.ErrOverloaded) by the
// error of an Apply that lost more compare-and-swap races on one key than
// Options.MaxRetries allows.
var ErrContention = errors.New("memcachestore: too many compare-and-swap conflicts")

// Options configure a Store. Servers is required; every other zero field
// takes its default.
type Options struct {
	// Servers are memcached addresses, "host:port" (TCP) or a path
	// containing '/' (a Unix socket). Host names are resolved at each dial,
	// not by New. Keys are hashed across the servers, so all replicas must
	// use the same list in the same order.
	Servers []string
	// Timeout bounds one Apply (default DefaultTimeout, 10 ms, half of
	// Envoy's 20 ms rate-limit filter timeout; the service sets it from
	// --store-timeout, 15 ms by default). No round trip starts after
	// it has passed, and every round trip (dial, write and read) has a
	// deadline of at most Timeout/2, so an Apply returns within about
	// 1.5 × Timeout even when a server hangs. The ctx passed to Apply can
	// shorten it.
	Timeout time.Duration
	// Connections is the number of connections per server (default
	// DefaultConnections, 1), each carrying the pipelined commands of
	// whichever calls are waiting when it is free. One connection makes
	// the largest batches, so the least CPU per request on both sides
	// (bench/notes.md); more let a server's threads work in parallel.
	Connections int
	// MaxRetries is how many times one Apply may re-read and re-step a key
	// after losing a compare-and-swap race on it (default
	// DefaultMaxRetries). Beyond it Apply fails with ErrContention.
	MaxRetries int
}

// Store is a limiter.Store on memcached. It is safe for concurrent use.
// Create it with New; the zero value is not usable.
type Store struct {
	servers    []*server
	timeout    time.Duration
	maxRetries int
	locks      *keyLocks
	high       *window.HighWater
	closed     atomic.Bool
	pool       sync.Pool // *applier
	// stop ends the flushers (Close); flushers counts them.
	stop     chan struct{}
	stopOnce sync.Once
	flushers sync.WaitGroup
}

var _ limiter.Store = (*Store)(nil)

// New returns a Store for opts and starts its flushers (Close stops
// them). It does not contact the servers, so it succeeds while they are
// down; use Ping to check them.
func New(opts Options) (*Store, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("memcachestore: no servers")
	}
	addrs := make([]net.Addr, len(opts.Servers))
	var errs []error
	for i, s := range opts.Servers {
		a, err := parseServer(s)
		if err != nil {
			errs = append(errs, err)
		}
		addrs[i] = a
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Timeout < 0 || opts.Connections < 0 || opts.MaxRetries < 0 {
		return nil, errors.New("memcachestore: Timeout, Connections and MaxRetries must not be negative")
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Connections == 0 {
		opts.Connections = DefaultConnections
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	s := &Store{timeout: opts.Timeout, maxRetries: opts.MaxRetries, locks: newKeyLocks(), high: window.NewHighWater(), stop: make(chan struct{})}
	s.servers = newServers(addrs, opts.Connections, max(opts.Timeout/2, time.Millisecond), s.stop, &s.flushers)
	s.pool.New = func() any { return new(applier) }
	return s, nil
}

// Apply implements limiter.Store; see the package documentation for how.
//
// When a write loses a race and the re-stepped key now denies the
// request, the ops of this request already written to other keys are
// refunded (in compare-and-swap loops, all keys in one phase), the
// hits added to fixed_window counters are decremented back, and the
// denial is reported. Between that write and its refund, other requests may see
// the consumed quota and be denied; they are never over-admitted. An
// error after some keys were written also refunds them, as far as the
// servers can still be reached; what cannot be refunded stays consumed
// (the store errs on the side of denying).
func (s *Store) Apply(ctx context.Context, now int64, ops []limiter.Op, out []strategies.Decision) error {
	if len(out) != len(ops) {
		return fmt.Errorf("memcachestore: %d decisions for %d ops", len(out), len(ops))
	}
	if len(ops) == 0 {
		return nil
	}
	for i := range ops {
		if ops[i].Strategy == nil {
			return fmt.Errorf("memcachestore: op %d (key %q) has no strategy", i, ops[i].Key)
		}
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
	defer cancel()
	a := s.pool.Get().(*applier)
	a.jobs = resize(a.jobs, len(s.servers))
	a.reset(s, ctx, now, ops, out)
	a.stripes = s.locks.stripesOf(a.stripes[:0], a.keys)
	err := s.locks.lock(ctx, a.stripes)
	if err == nil {
		err = a.run()
		s.locks.unlock(a.stripes)
	}
	a.release()
	s.pool.Put(a)
	return err
}

// Ping checks that every server answers, within Timeout and ctx.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmds := make([]cmd, len(s.servers))
	jobs := make([]job, len(s.servers))
	for i := range jobs {
		cmds[i].op = cmdNoop
		jobs[i].cmds = []*cmd{&cmds[i]}
	}
	s.send(ctx, jobs)
	var errs []error
	for i := range cmds {
		switch err := cmds[i].err; {
		case errors.Is(err, errNotSent):
			errs = append(errs, fmt.Errorf("memcachestore: ping %s: %w: %w", s.servers[i].addr, limiter.ErrUnavailable, ctx.Err()))
		case err != nil:
			errs = append(errs, fmt.Errorf("memcachestore: ping %s: %w: %w", s.servers[i].addr, limiter.ErrUnavailable, err))
		}
	}
	return errors.Join(errs...)
}

// Close stops the flushers and closes their connections, after the round
// trips under way. Apply and Ping fail with ErrClosed afterwards; calls
// already running finish (with ErrClosed for what they had not sent).
// Close is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
	s.flushers.Wait()
	return nil
}

// lazyAddr is a server address resolved by the dialer, not by New.
type lazyAddr struct{ network, addr string }

func (a lazyAddr) Network() string { return a.network }
func (a lazyAddr) String() string  { return a.addr }

// parseServer checks one Options.Servers entry.
func parseServer(s string) (net.Addr, error) {
	if strings.Contains(s, "/") {
		return lazyAddr{network: "unix", addr: s}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("memcachestore: server %q: %w", s, err)
	}
	if host == "" || port == "" {
		return nil, fmt.Errorf("memcachestore: server %q: want host:port", s)
	}
	return lazyAddr{network: "tcp", addr: s}, nil
}
