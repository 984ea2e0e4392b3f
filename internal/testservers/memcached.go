package testservers

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// memcachedStartTimeout bounds how long a memcached process may take to
// accept connections after it was started.
const memcachedStartTimeout = 10 * time.Second

// MemcachedServer is a memcached process on a loopback port, owned by one
// Harness (a test, or a command such as rls-bench), whose cleanup kills it
// and waits for it to exit. Stop and
// Start let a fault test take the server down and bring it back on the
// same address. A MemcachedServer is safe for concurrent use; Stop and
// Start must be called from the test's goroutine (they fail the test on
// error).
type MemcachedServer struct {
	// Addr is "127.0.0.1:port"; it stays the same across Stop and Start.
	Addr string

	h Harness
	p proc
}

// Pid returns the process id of the running memcached (0 when stopped),
// so that a benchmark can read its CPU time from /proc.
func (m *MemcachedServer) Pid() int { return m.p.pid() }

// MemcachedOptions configure MemcachedWith. The zero value is the
// defaults.
type MemcachedOptions struct {
	// MemoryMB is the item memory in megabytes (default 64).
	MemoryMB int
	// Connections is the most simultaneous connections (default 1024).
	Connections int
}

// Memcached starts a memcached server on a free loopback port with the
// default MemcachedOptions and stops it when h is done. A missing
// memcached binary fails h (it is never a silent skip): install the
// Debian package memcached, or run scripts/test-deps.sh.
func Memcached(h Harness) *MemcachedServer {
	h.Helper()
	return MemcachedWith(h, MemcachedOptions{})
}

// MemcachedWith starts a memcached server as Memcached does, configured
// by opts.
func MemcachedWith(h Harness, opts MemcachedOptions) *MemcachedServer {
	h.Helper()
	if opts.MemoryMB <= 0 {
		opts.MemoryMB = 64
	}
	if opts.Connections <= 0 {
		opts.Connections = 1024
	}
	bin := serverBinary(h, "memcached", "memcached")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			h.Fatalf("testservers: memcached: %v", err)
		}
		s := &MemcachedServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), h: h}
		args := []string{
			"-l", "127.0.0.1",
			"-p", strconv.Itoa(port),
			"-U", "0", // no UDP
			"-m", strconv.Itoa(opts.MemoryMB),
			"-t", "2", // worker threads
			"-c", strconv.Itoa(opts.Connections),
		}
		if os.Geteuid() == 0 {
			// memcached refuses to run as root without naming a user.
			args = append(args, "-u", "root")
		}
		s.p = proc{what: "memcached on " + s.Addr, bin: bin, args: args, ready: s.answers, timeout: memcachedStartTimeout}
		// The free port may be taken between choosing it and memcached
		// binding it; try another one then.
		if lastErr = s.p.start(); lastErr == nil {
			h.Cleanup(s.Stop)
			return s
		}
	}
	h.Fatalf("%v", lastErr)
	return nil
}

// MemcachedPool starts n memcached servers (see Memcached), for stores that
// hash keys across several nodes.
func MemcachedPool(h Harness, n int) []*MemcachedServer {
	h.Helper()
	if n < 1 {
		h.Fatalf("testservers: MemcachedPool: n must be at least 1, got %d", n)
	}
	pool := make([]*MemcachedServer, n)
	for i := range pool {
		pool[i] = Memcached(h)
	}
	return pool
}

// MemcachedAddrs returns the addresses of servers, in order.
func MemcachedAddrs(servers []*MemcachedServer) []string {
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr
	}
	return addrs
}

// Stop kills the server and waits for it to exit; its data is lost. Stop
// on a stopped server does nothing.
func (s *MemcachedServer) Stop() { s.p.stop() }

// Start starts a stopped server again on the same address, empty. Start
// on a running server does nothing. It fails the test when the server
// does not come up.
func (s *MemcachedServer) Start() {
	s.h.Helper()
	if err := s.p.start(); err != nil {
		s.h.Fatalf("testservers: memcached: restart on %s: %v", s.Addr, err)
	}
}

// Pause freezes the server process (SIGSTOP): connections are still
// accepted by the kernel but never answered, as with a hung server, so
// clients run into their timeouts. Resume undoes it; Stop and the test's
// cleanup work on a paused server too.
func (s *MemcachedServer) Pause() {
	s.h.Helper()
	if err := s.p.signal(syscall.SIGSTOP); err != nil {
		s.h.Fatalf("testservers: %v", err)
	}
}

// Resume lets a paused server run again.
func (s *MemcachedServer) Resume() {
	s.h.Helper()
	if err := s.p.signal(syscall.SIGCONT); err != nil {
		s.h.Fatalf("testservers: %v", err)
	}
}

// answers reports nil when the server accepts a connection and answers a
// version command.
func (s *MemcachedServer) answers() error {
	c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	if !memcachedAnswers(c) {
		return fmt.Errorf("no memcached answer on %s", s.Addr)
	}
	return nil
}

// memcachedAnswers reports whether the server on c answers a version
// command, so that a port held by another program is not mistaken for
// memcached.
func memcachedAnswers(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return err == nil && bytes.HasPrefix(buf[:n], []byte("VERSION "))
}
