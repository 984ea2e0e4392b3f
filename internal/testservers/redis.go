package testservers

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Harness is what the server helpers need of their caller: a *testing.T,
// *testing.B or testing.TB satisfies it, and so can a benchmark or
// end-to-end harness outside the testing package. Fatalf must stop the
// caller (as testing.TB's does, or by exiting); Cleanup functions run,
// last added first, when the caller is done.
type Harness interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// redisStartTimeout bounds how long a redis-server process may take to
// answer PING after it was started.
const redisStartTimeout = 10 * time.Second

// RedisPassword is the password of the servers RedisTLS starts.
const RedisPassword = "envoy-rls-test-password"

// RedisMasterName is the master name the sentinel of RedisSentinel
// monitors.
const RedisMasterName = "envoy-rls-master"

// Server is one redis-server process (a plain node, a cluster node, a
// TLS node or a sentinel) on a loopback port, owned by one caller whose
// cleanup kills it and waits for it to exit. Stop and Start let a fault
// test take it down and bring it back on the same address with the same
// configuration (a plain node comes back empty; a cluster node reloads
// its nodes.conf and rejoins). A Server is safe for concurrent use; Start
// fails its Harness on error, so call it from the test's goroutine.
type Server struct {
	// Addr is "127.0.0.1:port"; it stays the same across Stop and Start.
	Addr string
	// Password is the server's requirepass, empty when it has none.
	Password string
	// TLS holds the certificate files of a TLS-only server, nil for a
	// plain one. Clients must present TLS.ClientCertFile/ClientKeyFile.
	TLS *TLSFiles

	h   Harness
	dir string
	log string
	p   proc
}

// Redis starts a single redis-server on a free loopback port, with no
// persistence, and stops it when h is done. A missing binary fails h; it
// is never a silent skip.
func Redis(h Harness) *Server {
	h.Helper()
	return startRedis(h, "redis", nil, nil)
}

// RedisTLS starts a TLS-only redis-server (no plain port) that requires
// RedisPassword and a client certificate signed by its test CA; the
// certificates are generated into a temporary directory and described by
// the returned Server's TLS field.
func RedisTLS(h Harness) *Server {
	h.Helper()
	dir := tempDir(h, "redis-tls-certs")
	files, err := writeTLSFiles(dir)
	if err != nil {
		h.Fatalf("testservers: redis tls: %v", err)
	}
	return startRedis(h, "redis-tls", &files, nil)
}

// startRedis starts one redis-server with the common arguments plus
// extra, retrying on another port when the chosen one was taken.
func startRedis(h Harness, name string, files *TLSFiles, extra func(s *Server) []string) *Server {
	h.Helper()
	bin := serverBinary(h, "redis-server", "redis-server")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			h.Fatalf("testservers: %s: %v", name, err)
		}
		s := newRedisServer(h, name, bin, port, files)
		if extra != nil {
			s.p.args = append(s.p.args, extra(s)...)
		}
		if lastErr = s.start(); lastErr == nil {
			h.Cleanup(s.Stop)
			return s
		}
	}
	h.Fatalf("%v", lastErr)
	return nil
}

// newRedisServer prepares (without starting) a server on port with its
// own directory.
func newRedisServer(h Harness, name, bin string, port int, files *TLSFiles) *Server {
	dir := tempDir(h, name)
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		TLS:  files,
		h:    h,
		dir:  dir,
		log:  filepath.Join(dir, "redis.log"),
	}
	s.p = proc{what: name + " on " + s.Addr, bin: bin, ready: s.ping, detail: s.logTail, timeout: redisStartTimeout}
	s.p.args = []string{
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", dir,
		"--logfile", s.log,
	}
	if files == nil {
		s.p.args = append(s.p.args, "--port", strconv.Itoa(port))
	} else {
		s.Password = RedisPassword
		s.p.args = append(s.p.args,
			"--port", "0",
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.ServerCertFile,
			"--tls-key-file", files.ServerKeyFile,
			"--tls-ca-cert-file", files.CAFile,
			"--tls-auth-clients", "yes",
			"--requirepass", RedisPassword,
		)
	}
	return s
}

// URL returns the server's address as a go-redis URL: redis://addr, or
// rediss://:password@addr for a TLS server (the client still needs the
// CA and client certificate files).
func (s *Server) URL() string {
	if s.TLS != nil {
		return "rediss://:" + s.Password + "@" + s.Addr
	}
	if s.Password != "" {
		return "redis://:" + s.Password + "@" + s.Addr
	}
	return "redis://" + s.Addr
}

// ClientTLSConfig returns the TLS configuration a client of a TLS server
// needs (trusting the test CA, presenting the client certificate), or nil
// for a plain server.
func (s *Server) ClientTLSConfig() (*tls.Config, error) {
	if s.TLS == nil {
		return nil, nil
	}
	ca, err := os.ReadFile(s.TLS.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("no certificate in " + s.TLS.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(s.TLS.ClientCertFile, s.TLS.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS12}, nil
}

// Do sends one command on a new connection and returns the reply: a
// string (simple or bulk), an int64, a []any, nil, or a RedisError as the
// error. It is meant for test set-up and inspection (INFO, FLUSHALL,
// CLUSTER INFO), not for load.
func (s *Server) Do(args ...string) (any, error) {
	conf, err := s.ClientTLSConfig()
	if err != nil {
		return nil, err
	}
	rc, err := dialRedis(s.Addr, conf, s.Password, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	return rc.do(args...)
}

// Info returns field of the INFO section (such as "commandstats"), and
// whether the server reported it.
func (s *Server) Info(section, field string) (string, bool, error) {
	v, err := s.Do("INFO", section)
	if err != nil {
		return "", false, err
	}
	text, _ := v.(string)
	f, ok := infoField(text, field)
	return f, ok, nil
}

// Stop kills the server and waits for it to exit. Stop on a stopped
// server does nothing.
func (s *Server) Stop() { s.p.stop() }

// Start starts a stopped server again on the same address with the same
// configuration. Start on a running server does nothing. It fails the
// Harness when the server does not come up.
func (s *Server) Start() {
	s.h.Helper()
	if err := s.start(); err != nil {
		s.h.Fatalf("testservers: restart redis on %s: %v", s.Addr, err)
	}
}

// Pid returns the process id of the running redis-server (0 when
// stopped), so that a benchmark can read its CPU time from /proc.
func (s *Server) Pid() int { return s.p.pid() }

// Running reports whether the server process is running.
func (s *Server) Running() bool { return s.p.running() }

// start launches the process and waits until it answers PING.
func (s *Server) start() error { return s.p.start() }

// ping reports whether the server answers PING with PONG.
func (s *Server) ping() error {
	conf, err := s.ClientTLSConfig()
	if err != nil {
		return err
	}
	rc, err := dialRedis(s.Addr, conf, s.Password, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer rc.close()
	v, err := rc.do("PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("PING answered %v", v)
	}
	return nil
}

// logTail returns the end of the server's log file for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\nlog " + s.log + ":\n" + string(b)
}

// Cluster is a Redis Cluster of three masters without replicas, each a
// Server; a node can be stopped and started again for fault tests.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the addresses of the cluster's nodes.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// RedisCluster starts three redis-server nodes with cluster mode enabled,
// joins them with `redis-cli --cluster create` (16384 slots over three
// masters, no replicas), waits until every node reports cluster_state:ok,
// and stops them when h is done.
func RedisCluster(h Harness) *Cluster {
	h.Helper()
	cli := serverBinary(h, "redis-cli", "redis-tools")
	c := &Cluster{}
	for range 3 {
		c.Nodes = append(c.Nodes, startRedis(h, "redis-cluster", nil, func(s *Server) []string {
			busPort, err := freePort()
			if err != nil {
				h.Fatalf("testservers: redis cluster: %v", err)
			}
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
				"--cluster-node-timeout", "2000",
				"--cluster-port", strconv.Itoa(busPort),
			}
		}))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		h.Fatalf("testservers: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitOK(redisStartTimeout); err != nil {
		h.Fatalf("testservers: redis cluster: %v\n%s", err, out)
	}
	return c
}

// WaitOK waits until every running node reports cluster_state:ok with all
// 16384 slots assigned and known to it, for after a node was restarted.
// It fails the Harness after timeout.
func (c *Cluster) WaitOK(h Harness, timeout time.Duration) {
	h.Helper()
	if err := c.waitOK(timeout); err != nil {
		h.Fatalf("testservers: redis cluster: %v", err)
	}
}

func (c *Cluster) waitOK(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for _, n := range c.Nodes {
			v, err := n.Do("CLUSTER", "INFO")
			if err != nil {
				bad = fmt.Sprintf("%s: %v", n.Addr, err)
				break
			}
			text, _ := v.(string)
			state, _ := infoField(text, "cluster_state")
			slots, _ := infoField(text, "cluster_slots_ok")
			known, _ := infoField(text, "cluster_known_nodes")
			if state != "ok" || slots != "16384" || known != strconv.Itoa(len(c.Nodes)) {
				bad = fmt.Sprintf("%s: cluster_state %q, cluster_slots_ok %q, cluster_known_nodes %q", n.Addr, state, slots, known)
				break
			}
		}
		if bad == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ok within %s: %s", timeout, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Sentinel is a Redis master watched by one sentinel.
type Sentinel struct {
	// Master is the monitored master.
	Master *Server
	// Sentinel is the `redis-server --sentinel` process.
	Sentinel *Server
	// MasterName is the name the sentinel knows the master by
	// (RedisMasterName).
	MasterName string
}

// Addrs returns the sentinels' addresses.
func (s *Sentinel) Addrs() []string { return []string{s.Sentinel.Addr} }

// RedisSentinel starts a master and one sentinel monitoring it under
// RedisMasterName (quorum 1), waits until the sentinel reports the
// master's address, and stops both when h is done.
func RedisSentinel(h Harness) *Sentinel {
	h.Helper()
	master := Redis(h)
	bin := serverBinary(h, "redis-server", "redis-server")
	_, masterPort, _ := net.SplitHostPort(master.Addr)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			h.Fatalf("testservers: redis sentinel: %v", err)
		}
		dir := tempDir(h, "redis-sentinel")
		conf := filepath.Join(dir, "sentinel.conf")
		text := strings.Join([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"protected-mode no",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "redis.log"),
			"sentinel monitor " + RedisMasterName + " 127.0.0.1 " + masterPort + " 1",
			"sentinel down-after-milliseconds " + RedisMasterName + " 5000",
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			h.Fatalf("testservers: redis sentinel: %v", err)
		}
		s := &Server{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			h:    h,
			dir:  dir,
			log:  filepath.Join(dir, "redis.log"),
		}
		s.p = proc{what: "redis sentinel on " + s.Addr, bin: bin, args: []string{conf, "--sentinel"},
			ready: s.ping, detail: s.logTail, timeout: redisStartTimeout}
		if lastErr = s.start(); lastErr != nil {
			continue
		}
		h.Cleanup(s.Stop)
		sn := &Sentinel{Master: master, Sentinel: s, MasterName: RedisMasterName}
		if err := sn.waitMaster(redisStartTimeout); err != nil {
			h.Fatalf("testservers: redis sentinel: %v", err)
		}
		return sn
	}
	h.Fatalf("%v", lastErr)
	return nil
}

func (s *Sentinel) waitMaster(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v, err := s.Sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if a, ok := v.([]any); err == nil && ok && len(a) == 2 {
			if net.JoinHostPort(fmt.Sprint(a[0]), fmt.Sprint(a[1])) == s.Master.Addr {
				return nil
			}
			err = fmt.Errorf("sentinel reports master %v:%v, want %s", a[0], a[1], s.Master.Addr)
		} else if err == nil {
			err = fmt.Errorf("sentinel answered %v", v)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinel does not know the master within %s: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serverBinary returns the path of the named binary (redis-server,
// redis-cli, memcached) or fails h, naming the
// Debian package that provides it.
func serverBinary(h Harness, name, pkg string) string {
	h.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/bin", "/usr/local/bin", "/usr/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		h.Fatalf("testservers: %s not found in $PATH: the CI image must install the Debian package %s (apt-get install %s)", name, pkg, pkg)
	}
	h.Fatalf("testservers: %s not found in $PATH: run scripts/test-deps.sh (or install the Debian package %s)", name, pkg)
	return ""
}

// tempDir makes a directory that is removed when h is done.
func tempDir(h Harness, name string) string {
	h.Helper()
	dir, err := os.MkdirTemp("", "envoy-rls-"+name+"-")
	if err != nil {
		h.Fatalf("testservers: %v", err)
	}
	h.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}
