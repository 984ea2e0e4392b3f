package testservers

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// memcachedStartTimeout bounds how long a memcached process may take to
// accept connections after it was started.
const memcachedStartTimeout = 10 * time.Second

// MemcachedServer is a memcached process on a loopback port, owned by one
// test. The test's cleanup kills it and waits for it to exit. Stop and
// Start let a fault test take the server down and bring it back on the
// same address. A MemcachedServer is safe for concurrent use; Stop and
// Start must be called from the test's goroutine (they fail the test on
// error).
type MemcachedServer struct {
	// Addr is "127.0.0.1:port"; it stays the same across Stop and Start.
	Addr string

	t    testing.TB
	bin  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	stderr *bytes.Buffer
}

// Memcached starts a memcached server on a free loopback port and stops it
// when t ends. A missing memcached binary fails the test (it is never
// skipped): install the Debian package memcached, or run
// scripts/test-deps.sh.
func Memcached(t testing.TB) *MemcachedServer {
	t.Helper()
	bin := memcachedBinary(t)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testservers: memcached: %v", err)
		}
		s := &MemcachedServer{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			t:    t,
			bin:  bin,
			port: port,
		}
		// The free port may be taken between choosing it and memcached
		// binding it; try another one then.
		if lastErr = s.startMemcachedProc(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("testservers: memcached: %v", lastErr)
	return nil
}

// MemcachedPool starts n memcached servers (see Memcached), for stores that
// hash keys across several nodes.
func MemcachedPool(t testing.TB, n int) []*MemcachedServer {
	t.Helper()
	if n < 1 {
		t.Fatalf("testservers: MemcachedPool: n must be at least 1, got %d", n)
	}
	pool := make([]*MemcachedServer, n)
	for i := range pool {
		pool[i] = Memcached(t)
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
func (s *MemcachedServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // fails only when it has exited already
	<-s.exited
	s.cmd, s.exited, s.stderr = nil, nil, nil
}

// Start starts a stopped server again on the same address, empty. Start
// on a running server does nothing. It fails the test when the server
// does not come up.
func (s *MemcachedServer) Start() {
	s.t.Helper()
	if err := s.startMemcachedProc(); err != nil {
		s.t.Fatalf("testservers: memcached: restart on %s: %v", s.Addr, err)
	}
}

// Pause freezes the server process (SIGSTOP): connections are still
// accepted by the kernel but never answered, as with a hung server, so
// clients run into their timeouts. Resume undoes it; Stop and the test's
// cleanup work on a paused server too.
func (s *MemcachedServer) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume lets a paused server run again.
func (s *MemcachedServer) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *MemcachedServer) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("testservers: memcached on %s: %v on a stopped server", s.Addr, sig)
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("testservers: memcached on %s: %v: %v", s.Addr, sig, err)
	}
}

// Running reports whether the server process is running.
func (s *MemcachedServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// startMemcachedProc starts the process on s.port and waits until it
// accepts connections. On failure no process is left running.
func (s *MemcachedServer) startMemcachedProc() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	args := []string{
		"-l", "127.0.0.1",
		"-p", strconv.Itoa(s.port),
		"-U", "0", // no UDP
		"-m", "64", // MB of item memory
		"-t", "2", // worker threads
		"-c", "1024",
	}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root without naming a user.
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(s.bin, args...)
	stderr := new(bytes.Buffer)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed server is expected
		close(exited)
	}()

	deadline := time.Now().Add(memcachedStartTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("memcached on %s exited at start: %s", s.Addr, bytes.TrimSpace(stderr.Bytes()))
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			ok := memcachedAnswers(c)
			_ = c.Close()
			if ok {
				s.cmd, s.exited, s.stderr = cmd, exited, stderr
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("memcached on %s did not accept connections within %s: %s", s.Addr, memcachedStartTimeout, bytes.TrimSpace(stderr.Bytes()))
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// memcachedBinary returns the path of the memcached binary or fails t.
func memcachedBinary(t testing.TB) string {
	t.Helper()
	return serverBinary(t, "memcached", "memcached")
}
