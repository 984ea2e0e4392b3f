// Package memcachestore is a limiter.Store backed by one or more memcached
// servers (github.com/bradfitz/gomemcache).
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
// (by a compare-and-swap that stores it already expired) or not written.
package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
	"github.com/envoy-rls/envoy-rls/pkg/strategies"
)

// Defaults of Options.
const (
	DefaultTimeout      = 10 * time.Millisecond
	DefaultMaxIdleConns = 64
	DefaultMaxRetries   = 16
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
	// it has passed, and every socket read, write and dial has a deadline
	// of Timeout/2, so an Apply returns within about 1.5 × Timeout even
	// when a server hangs. The ctx passed to Apply can shorten it.
	Timeout time.Duration
	// MaxIdleConns is the number of idle connections kept per server
	// (default DefaultMaxIdleConns). Set it above the peak number of
	// concurrent round trips (one Apply runs up to 8 at once), or
	// connections are closed and dialled again.
	MaxIdleConns int
	// MaxRetries is how many times one Apply may re-read and re-step a key
	// after losing a compare-and-swap race on it (default
	// DefaultMaxRetries). Beyond it Apply fails with ErrContention.
	MaxRetries int
}

// Store is a limiter.Store on memcached. It is safe for concurrent use.
// Create it with New; the zero value is not usable.
type Store struct {
	mc         *memcache.Client
	timeout    time.Duration
	maxRetries int
	locks      *keyLocks
	high       *highWater
	closed     atomic.Bool
	pool       sync.Pool // *applier
}

var _ limiter.Store = (*Store)(nil)

// New returns a Store for opts. It does not contact the servers, so it
// succeeds while they are down; use Ping to check them.
func New(opts Options) (*Store, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("memcachestore: no servers")
	}
	sel := &serverSelector{addrs: make([]net.Addr, len(opts.Servers))}
	var errs []error
	for i, s := range opts.Servers {
		a, err := parseServer(s)
		if err != nil {
			errs = append(errs, err)
		}
		sel.addrs[i] = a
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Timeout < 0 || opts.MaxIdleConns < 0 || opts.MaxRetries < 0 {
		return nil, errors.New("memcachestore: Timeout, MaxIdleConns and MaxRetries must not be negative")
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxIdleConns == 0 {
		opts.MaxIdleConns = DefaultMaxIdleConns
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	mc := memcache.NewFromSelector(sel)
	mc.Timeout = max(opts.Timeout/2, time.Millisecond)
	mc.MaxIdleConns = opts.MaxIdleConns
	s := &Store{mc: mc, timeout: opts.Timeout, maxRetries: opts.MaxRetries, locks: newKeyLocks(), high: newHighWater()}
	s.pool.New = func() any { return new(applier) }
	return s, nil
}

// Apply implements limiter.Store; see the package documentation for how.
//
// When a write loses a race and the re-stepped key now denies the
// request, the ops of this request already written to other keys are
// refunded (each in its own compare-and-swap loop, in parallel), the
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
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcachestore: ping: %w: %w", limiter.ErrUnavailable, err)
	}
	if err := s.mc.Ping(); err != nil {
		return fmt.Errorf("memcachestore: ping: %w: %w", limiter.ErrUnavailable, err)
	}
	return nil
}

// Close closes the idle connections. Apply and Ping fail with ErrClosed
// afterwards; calls already running finish. Close is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	if err := s.mc.Close(); err != nil {
		return fmt.Errorf("memcachestore: close: %w", err)
	}
	return nil
}

// serverSelector picks a server by the CRC-32 of the key, like
// memcache.ServerList, but keeps addresses unresolved so that New works
// before DNS knows the servers and a dial follows DNS changes.
type serverSelector struct {
	addrs []net.Addr
}

func (ss *serverSelector) PickServer(key string) (net.Addr, error) {
	switch len(ss.addrs) {
	case 0:
		return nil, memcache.ErrNoServers
	case 1:
		return ss.addrs[0], nil
	}
	return ss.addrs[crc32.ChecksumIEEE([]byte(key))%uint32(len(ss.addrs))], nil
}

func (ss *serverSelector) Each(f func(net.Addr) error) error {
	for _, a := range ss.addrs {
		if err := f(a); err != nil {
			return err
		}
	}
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
