package redisstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// Modes of Options.Mode.
const (
	ModeSingle   = "single"
	ModeSentinel = "sentinel"
	ModeCluster  = "cluster"
)

// DefaultTimeout bounds each Apply when Options.Timeout is zero, for
// programs that use the package directly; the service always sets
// Options.Timeout from --store-timeout (15 ms by default). Envoy's
// rate-limit filter gives the whole call 20 ms by default; a store
// timeout below it leaves the rest to the network between Envoy and
// envoy-rls, gRPC and the limiter, so that a slow Redis turns into a
// store error the service answers (per its failure mode) before Envoy
// gives up.
const DefaultTimeout = 10 * time.Millisecond

// Options configure a Store. The zero value connects to nothing: set URL
// or Addrs. Fields left zero take go-redis's defaults unless said
// otherwise.
type Options struct {
	// Mode is ModeSingle (the default when empty), ModeSentinel or
	// ModeCluster.
	Mode string
	// URL is a go-redis URL, redis:// or rediss:// (TLS), carrying user,
	// password, database and go-redis query options. Single mode parses
	// it with redis.ParseURL, cluster mode with redis.ParseClusterURL
	// (more nodes as addr= query parameters), sentinel mode with
	// redis.ParseFailoverURL (the host is a sentinel). Addrs, when set,
	// replace the addresses of the URL.
	URL string
	// Addrs are host:port addresses: the one node in single mode, the
	// seed nodes in cluster mode, the sentinels in sentinel mode.
	Addrs []string
	// MasterName is the master's name in sentinel mode (required there).
	MasterName string
	// Username and Password authenticate to the Redis nodes; when set they
	// override those of the URL.
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// in sentinel mode.
	SentinelUsername string
	SentinelPassword string
	// DB selects the database (single and sentinel modes); 0 keeps the
	// URL's.
	DB int

	// TLS turns TLS on without a rediss:// URL (for Addrs). TLS is also
	// on when the URL's scheme is rediss or any of the fields below is
	// set.
	TLS bool
	// CAFile is a PEM file of the authorities the server's certificate
	// must chain to; empty means the system's pool.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (PEM), for
	// servers that require client certificates.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the server's certificate is checked
	// against (default: the host dialed).
	ServerName string
	// InsecureSkipVerify disables verification of the server's
	// certificate. For tests only.
	InsecureSkipVerify bool

	// PoolSize is the number of connections per node (default: go-redis's
	// 10 per CPU).
	PoolSize int
	// MinIdleConns is the number of connections per node kept open and
	// idle: go-redis dials them in the background from New on, and Warm
	// waits for them, so that the first burst of calls does not dial
	// under its deadline. Zero means the pipelines plus one (see
	// Pipelines) in single and sentinel modes, two per node in cluster
	// mode; set it higher when batching is off (MaxBatch 1). It is capped
	// at PoolSize.
	MinIdleConns int
	// DialTimeout, ReadTimeout and WriteTimeout bound one dial, read and
	// write; each call is also bounded by Timeout.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// Timeout bounds each Apply, round trips, retries and cluster
	// refunds included (default DefaultTimeout).
	Timeout time.Duration

	// ClientTime makes the store use the now passed to Apply. When false
	// (the default) the script reads the Redis server's TIME, so that
	// envoy-rls replicas whose clocks disagree still share windows and
	// buckets, and the fixed_window counters (whose window is part of the
	// key, chosen before the call is sent) use an estimate of that clock
	// (see counter.go); the now passed to Apply is then ignored. Tests
	// that drive time, such as the shared strategy tables, need true.
	ClientTime bool
	// Pipelines is the most batches a Store has in flight at once: the
	// number of goroutines (each using one connection per node at a
	// time) that send the calls waiting in the store's queue to Redis as
	// one pipeline. At light load each sends the calls waiting as soon
	// as it is idle. Under heavy load (pipelines of four calls or more on
	// average) one of them sends, and the calls that arrive while its
	// pipeline is in flight go together in the next, which doubles the
	// batches; the others send only while a pipeline has been in flight
	// for four times the average round trip (at least a millisecond), so
	// that a stalled connection holds only its own calls. Zero means
	// DefaultPipelines.
	// Ignored when MaxBatch is 1.
	Pipelines int
	// MaxBatch is the largest number of script calls sent in one
	// pipeline. In single and sentinel modes a script call is an Apply
	// call, and the calls of a pipeline are merged into one FCALL (or
	// EVALSHA) that decides them one after the other, each atomic on its
	// own. In cluster mode a script call is the ops of an Apply call on
	// one hash slot, and the pipeline carries one EVALSHA per such call,
	// to every master concerned at once. Zero means DefaultMaxBatch. 1
	// disables batching: every Apply then sends its own script calls from
	// its own goroutines on pooled connections.
	MaxBatch int
	// BatchWindow is how long a pipeline goroutine that has taken a call
	// waits for more before sending (up to MaxBatch). Zero, the default,
	// is natural batching: a call is sent at once when a pipeline
	// goroutine is idle, and calls that arrive while every one is busy
	// wait and go together in the next pipeline.
	BatchWindow time.Duration

	// EvalScripts makes the store run its script with EVALSHA even on
	// servers that have Redis 7 functions. By default, in single and
	// sentinel modes, the script is loaded as a function library (FUNCTION
	// LOAD; the library's name carries a hash of its code) and called with
	// FCALL, which spares the server setting the strategies' code up on
	// every call; servers before Redis 7, or whose ACL denies FUNCTION,
	// make the store fall back to EVALSHA on its own. Cluster mode always
	// uses EVALSHA.
	EvalScripts bool

	// ExpirySlack keeps every state this much longer in Redis than the
	// TTL its decision asks for. Redis expires keys on its own clock,
	// while with ClientTime the TTL is measured on the callers' clocks,
	// which may disagree with each other and with Redis (or, in tests,
	// run apart from real time); a state kept after its TTL behaves as a
	// fresh key, so the slack costs memory only. Zero means none with
	// server time and DefaultClientTimeSlack with ClientTime.
	ExpirySlack time.Duration
}

// DefaultPipelines is the most pipelines in flight at once when
// Options.Pipelines is zero (under heavy load: one, and a spare for a
// stall).
const DefaultPipelines = 2

// DefaultMaxBatch is the largest batch of Apply calls per pipeline when
// Options.MaxBatch is zero.
const DefaultMaxBatch = 128

// DefaultClientTimeSlack is the ExpirySlack of a Store with ClientTime
// when Options.ExpirySlack is zero.
const DefaultClientTimeSlack = time.Second

// minIdleConns returns the effective MinIdleConns, capped at PoolSize
// when that is set (go-redis's default pool is larger than any default
// here).
func (o Options) minIdleConns() int {
	n := o.MinIdleConns
	if n == 0 {
		n = 2
		if o.mode() != ModeCluster {
			n = o.Pipelines
			if n == 0 {
				n = DefaultPipelines
			}
			n++ // and one for Ping and script loads
		}
	}
	if o.PoolSize > 0 {
		n = min(n, o.PoolSize)
	}
	return n
}

// mode returns the effective mode.
func (o Options) mode() string {
	if o.Mode == "" {
		return ModeSingle
	}
	return o.Mode
}

// tlsWanted reports whether any TLS option is set.
func (o Options) tlsWanted() bool {
	return o.TLS || o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != "" || o.InsecureSkipVerify
}

// tlsConfig returns base (the URL's TLS configuration, possibly nil)
// completed with the TLS options, or base unchanged when none is set.
func (o Options) tlsConfig(base *tls.Config) (*tls.Config, error) {
	if !o.tlsWanted() {
		return base, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		conf = base.Clone()
	}
	var errs []error
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("ca_file %s: no PEM certificate found", o.CAFile))
			}
			conf.RootCAs = pool
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file must be set together"))
	} else if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("client certificate: %w", err))
		} else {
			conf.Certificates = []tls.Certificate{cert}
		}
	}
	if o.ServerName != "" {
		conf.ServerName = o.ServerName
	}
	if o.InsecureSkipVerify {
		conf.InsecureSkipVerify = true
	}
	return conf, errors.Join(errs...)
}

// newClient builds the go-redis client the options describe. It does not
// connect: go-redis dials lazily, so a store whose server is down can be
// created and starts working when the server comes up.
func (o Options) newClient() (rediser, bool, error) {
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %v", o.Timeout))
	}
	if o.ExpirySlack < 0 {
		errs = append(errs, fmt.Errorf("expiry_slack must not be negative, got %v", o.ExpirySlack))
	}
	if o.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("pool_size must not be negative, got %d", o.PoolSize))
	}
	if o.MinIdleConns < 0 {
		errs = append(errs, fmt.Errorf("min_idle_conns must not be negative, got %d", o.MinIdleConns))
	}
	if o.Pipelines < 0 {
		errs = append(errs, fmt.Errorf("pipelines must not be negative, got %d", o.Pipelines))
	}
	if o.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("max_batch must not be negative, got %d", o.MaxBatch))
	}
	if o.BatchWindow < 0 {
		errs = append(errs, fmt.Errorf("batch_window must not be negative, got %v", o.BatchWindow))
	}
	if o.DB < 0 {
		errs = append(errs, fmt.Errorf("db must not be negative, got %d", o.DB))
	}
	switch o.mode() {
	case ModeSingle:
		c, err := o.single()
		return c, false, errors.Join(append(errs, err)...)
	case ModeSentinel:
		c, err := o.sentinel()
		return c, false, errors.Join(append(errs, err)...)
	case ModeCluster:
		c, err := o.cluster()
		return c, true, errors.Join(append(errs, err)...)
	}
	errs = append(errs, fmt.Errorf("unknown mode %q (want %s, %s or %s)", o.Mode, ModeSingle, ModeSentinel, ModeCluster))
	return nil, false, errors.Join(errs...)
}

// protocol is the RESP version the clients speak. The store needs
// nothing of RESP3, and with RESP2 go-redis skips its look for push
// notifications after every reply (2–3 % of the service's CPU under
// load in a profile of the fixed_window path).
const protocol = 2

func (o Options) single() (rediser, error) {
	ro := &redis.Options{}
	if o.URL != "" {
		var err error
		if ro, err = redis.ParseURL(o.URL); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	}
	switch {
	case len(o.Addrs) == 1:
		ro.Addr = o.Addrs[0]
	case len(o.Addrs) > 1:
		return nil, fmt.Errorf("single mode takes one address, got %d (use mode cluster or sentinel)", len(o.Addrs))
	case o.URL == "":
		return nil, errors.New("single mode needs a url or an address")
	}
	if o.Username != "" {
		ro.Username = o.Username
	}
	if o.Password != "" {
		ro.Password = o.Password
	}
	if o.DB != 0 {
		ro.DB = o.DB
	}
	conf, err := o.tlsConfig(ro.TLSConfig)
	if err != nil {
		return nil, err
	}
	ro.TLSConfig = conf
	ro.PoolSize = o.PoolSize
	ro.MinIdleConns = o.minIdleConns()
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = -1
	ro.Protocol = protocol // a script that may have run must not run twice
	return redis.NewClient(ro), nil
}

func (o Options) sentinel() (rediser, error) {
	fo := &redis.FailoverOptions{}
	if o.URL != "" {
		var err error
		if fo, err = redis.ParseFailoverURL(o.URL); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	}
	if len(o.Addrs) > 0 {
		fo.SentinelAddrs = append([]string(nil), o.Addrs...)
	}
	if len(fo.SentinelAddrs) == 0 {
		return nil, errors.New("sentinel mode needs the sentinels' addresses")
	}
	if o.MasterName != "" {
		fo.MasterName = o.MasterName
	}
	if fo.MasterName == "" {
		return nil, errors.New("sentinel mode needs master_name")
	}
	if o.Username != "" {
		fo.Username = o.Username
	}
	if o.Password != "" {
		fo.Password = o.Password
	}
	if o.SentinelUsername != "" {
		fo.SentinelUsername = o.SentinelUsername
	}
	if o.SentinelPassword != "" {
		fo.SentinelPassword = o.SentinelPassword
	}
	if o.DB != 0 {
		fo.DB = o.DB
	}
	conf, err := o.tlsConfig(fo.TLSConfig)
	if err != nil {
		return nil, err
	}
	fo.TLSConfig = conf
	fo.PoolSize = o.PoolSize
	fo.MinIdleConns = o.minIdleConns()
	fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	fo.ContextTimeoutEnabled = true
	fo.MaxRetries = -1
	fo.Protocol = protocol
	return redis.NewFailoverClient(fo), nil
}

func (o Options) cluster() (rediser, error) {
	co := &redis.ClusterOptions{}
	if o.URL != "" {
		var err error
		if co, err = redis.ParseClusterURL(o.URL); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	}
	if len(o.Addrs) > 0 {
		co.Addrs = append([]string(nil), o.Addrs...)
	}
	if len(co.Addrs) == 0 {
		return nil, errors.New("cluster mode needs the nodes' addresses")
	}
	if o.DB != 0 {
		return nil, errors.New("cluster mode has only database 0")
	}
	if o.Username != "" {
		co.Username = o.Username
	}
	if o.Password != "" {
		co.Password = o.Password
	}
	conf, err := o.tlsConfig(co.TLSConfig)
	if err != nil {
		return nil, err
	}
	co.TLSConfig = conf
	co.PoolSize = o.PoolSize
	co.MinIdleConns = o.minIdleConns()
	co.DialTimeout, co.ReadTimeout, co.WriteTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	co.ContextTimeoutEnabled = true
	co.MaxRetries = -1
	co.Protocol = protocol
	return redis.NewClusterClient(co), nil
}
