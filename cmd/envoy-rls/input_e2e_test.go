package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// aliasBomb is a config of about 700 bytes whose aliases expand to 9^9
// (387 million) descriptors: the bomb.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("domain: edge\nl0: &l0 [{key: k, value: v}, {key: k, value: v}, {key: k, value: v}, {key: k, value: v}, {key: k, value: v}, {key: k, value: v}, {key: k, value: v}, {key: k, value: v}, {key: k, value: v}]\n")
	for i := 1; i <= 8; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(p+", ", 9), ", "))
	}
	b.WriteString("descriptors:\n  - key: bomb\n    descriptors: *l8\n")
	return b.String()
}

// selfAlias is the 58-byte config that refers to itself.
const selfAlias = "domain: edge\ndescriptors:\n  - &a {key: x, descriptors: [*a]}\n"

// densest is a config just under the default --config-max-bytes that is
// all one-character list items: the most YAML nodes per byte, and so the
// most memory a parse within the limit can take.
func densest() string {
	head, tail := "domain: edge\nx: [", "a]\n"
	return head + strings.Repeat("a,", (2<<20-len(head)-len(tail))/2) + tail
}

// bigConfig returns a valid config of at least n bytes.
func bigConfig(n int) string {
	var b strings.Builder
	b.WriteString("domain: edge\ndescriptors:\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "  - {key: k%d, value: v, rate_limit: {unit: hour, requests_per_unit: %d}}\n", i, i+1)
	}
	return b.String()
}

// procStatus reads a field of /proc/PID/status in kB.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// longestLine returns the length of the longest line of s.
func longestLine(s string) int {
	n := 0
	for line := range strings.SplitSeq(s, "\n") {
		n = max(n, len(line))
	}
	return n
}

// TestConfigBombValidate runs `envoy-rls validate` on configs built to
// exhaust memory: each is refused quickly, with a short message naming
// the problem, and the process's peak RSS stays small.
func TestConfigBombValidate(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	tooMany := "domain: edge\ndescriptors:\n" + strings.Repeat("  - key: k\n    colour: red\n", 5000)
	for _, tt := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"alias bomb", []string{file("bomb.yaml", aliasBomb())}, []string{"bomb.yaml:", "expands the file past 1048576 YAML nodes"}},
		{"self alias", []string{file("self.yaml", selfAlias)}, []string{"self.yaml:3: alias *a refers to the node that holds it"}},
		{"too large", []string{file("big.yaml", bigConfig(3<<20))}, []string{"more than the 2097152 bytes left of the limit (--config-max-bytes)"}},
		{"densest within the limit", []string{file("dense.yaml", densest())}, []string{`dense.yaml:2: domain "edge": unknown key "x"`}},
		{"too large for the flag", []string{"--config-max-bytes", "1000", file("small.yaml", bigConfig(2000))}, []string{"more than the 1000 bytes left"}},
		{"fifo", []string{fifo}, []string{"fifo.yaml is a FIFO"}},
		{"device", []string{"/dev/zero"}, []string{"/dev/zero is a character device"}},
		{"many problems", []string{file("many.yaml", tooMany)}, []string{" more problems"}},
	} {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rss := filepath.Join(t.TempDir(), "peak")
			cmd := exec.CommandContext(ctx, os.Args[0], append([]string{binary, "validate"}, tt.args...)...)
			cmd.Env = append(os.Environ(), peakRSSEnv+"="+rss)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("validate still running after 2 minutes")
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit code %d, want 1 (%v)", code, err)
			}
			for _, w := range tt.wants {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("output lacks %q:\n%.2000s", w, out)
				}
			}
			if len(out) > 64<<10 {
				t.Errorf("%d bytes of output", len(out))
			}
			peak := readPeakRSS(t, rss)
			t.Logf("peak RSS %d MB, %d bytes of output", peak>>10, len(out))
			if peak > 384<<10 {
				t.Errorf("peak RSS %d MB", peak>>10)
			}
		})
	}
}

// TestConfigBombHotReload writes each bomb over the rules of a running
// server: every reload is refused, the old rules keep serving, the log
// lines stay short, and memory stays bounded; a good config after them
// still loads.
func TestConfigBombHotReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	writeFile(t, path, reloadRulesV1)
	p := startServe(t, nil, "--config", path)
	pid := p.Pid()
	client := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
	if got := limitOf(t, client); got != 1000 {
		t.Fatalf("limit %d, want 1000", got)
	}
	baseline := procStatus(t, pid, "VmRSS")

	// replace puts content (or a FIFO) at path atomically, as an editor
	// or a deployment tool would.
	n := 0
	replace := func(content string, fifo bool) {
		n++
		tmp := filepath.Join(dir, fmt.Sprintf(".tmp%d", n))
		if fifo {
			if err := syscall.Mkfifo(tmp, 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFile(t, tmp, content)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	refused := 0
	waitRefused := func(what string) {
		t.Helper()
		refused++
		deadline := time.Now().Add(time.Minute)
		for strings.Count(p.Output(), "config refused") < refused {
			select {
			case <-p.Done():
				t.Fatalf("%s: the server exited: %v", what, p.Err())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no refused reload after a minute", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tt := range []struct {
		name    string
		content string
		fifo    bool
	}{
		{"alias bomb", aliasBomb(), false},
		{"self alias", selfAlias, false},
		{"too large", bigConfig(3 << 20), false},
		{"densest within the limit", densest(), false},
		{"fifo", "", true},
	} {
		replace(tt.content, tt.fifo)
		waitRefused(tt.name)
		if got := limitOf(t, client); got != 1000 {
			t.Errorf("%s: limit %d after the refused reload, want the old 1000", tt.name, got)
		}
		t.Logf("%s: refused; VmRSS %d MB, VmHWM %d MB", tt.name, procStatus(t, pid, "VmRSS")>>10, procStatus(t, pid, "VmHWM")>>10)
	}
	// The refused configs are not held: resident memory comes back near
	// where it started.
	if rss := procStatus(t, pid, "VmRSS"); rss > baseline+64<<10 {
		t.Errorf("VmRSS %d MB after the refused reloads, from %d MB at start", rss>>10, baseline>>10)
	}
	if hwm := procStatus(t, pid, "VmHWM"); hwm > baseline+384<<10 {
		t.Errorf("peak RSS %d MB after the bombs, from %d MB at start", hwm>>10, baseline>>10)
	}
	if l := longestLine(p.Output()); l > 16<<10 {
		t.Errorf("a log line of %d bytes", l)
	}
	replace(reloadRulesV2, false)
	waitLimit(t, client, 7, "a good config after the bombs")
}

// goroutines reads the total of the debug server's goroutine profile.
func goroutines(t *testing.T, debugAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total")))
	if err != nil {
		t.Fatalf("goroutine profile starts %q", line)
	}
	return n
}

// TestStreamFlood opens many connections that each open more streams
// than the server allows and send nothing on them. The server caps the
// streams of each connection, closes every connection holding a silent
// stream after --grpc-recv-timeout, keeps answering another client
// throughout, and
// its goroutines and memory stay bounded and come back down.
func TestStreamFlood(t *testing.T) {
	const (
		conns   = 10
		maxStr  = 100
		perConn = 150 // 50 more than the server lets a connection have
	)
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, reloadRulesV1)
	debug := freeAddr(t)
	// --debug-addr given twice: the last one wins over startServe's "".
	p := startServe(t, nil, "--config", path, "--debug-addr", debug,
		"--grpc-max-concurrent-streams", strconv.Itoa(maxStr), "--grpc-recv-timeout", "5s")
	pid := p.Pid()
	before := goroutines(t, debug)
	baseRSS := procStatus(t, pid, "VmRSS")

	var wg sync.WaitGroup
	var mu sync.Mutex
	opened, closed := 0, 0
	statuses := map[string]int{}
	var flooders []*grpc.ClientConn
	for range conns {
		flooders = append(flooders, dial(t, p.GRPCAddr))
	}
	// A test that fails early ends the flood before its connections
	// close (cleanups run last added first), so that no stream outlives
	// the test or reports a closing connection as an error.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, conn := range flooders {
		for range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// NewStream waits while the connection is at its cap.
				st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, rlsv3.RateLimitService_ShouldRateLimit_FullMethodName)
				if err != nil {
					switch {
					case ctx.Err() != nil:
					case status.Code(err) == codes.Unavailable:
						// The server closed the connection while this
						// stream waited for room on it.
						mu.Lock()
						closed++
						statuses[status.Code(err).String()]++
						mu.Unlock()
					default:
						t.Errorf("NewStream: %v", err)
					}
					return
				}
				mu.Lock()
				opened++
				mu.Unlock()
				var resp rlsv3.RateLimitResponse
				err = st.RecvMsg(&resp) // returns when the server closes the connection
				mu.Lock()
				closed++
				statuses[status.Code(err).String()]++
				mu.Unlock()
			}()
		}
	}
	// While the flood holds every stream it may, another client is served.
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		o := opened
		mu.Unlock()
		if o >= conns*maxStr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d streams opened after a minute", o)
		}
		time.Sleep(20 * time.Millisecond)
	}
	other := rlsv3.NewRateLimitServiceClient(dial(t, p.GRPCAddr))
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := other.ShouldRateLimit(ctx, request("edge", []string{"k", fmt.Sprint("other-", i)}))
		cancel()
		if err != nil {
			t.Fatalf("another client during the flood: %v", err)
		}
	}
	during := goroutines(t, debug)
	rss := procStatus(t, pid, "VmRSS")
	// Streams closed by the receive deadline make room for waiting ones,
	// so the bound is on those open at once.
	mu.Lock()
	o := opened - closed
	mu.Unlock()
	t.Logf("flood: %d streams open, server goroutines %d (from %d), VmRSS %d MB (from %d MB)", o, during, before, rss>>10, baseRSS>>10)
	if o > conns*maxStr {
		t.Errorf("%d streams open at once, more than %d connections × %d", o, conns, maxStr)
	}
	if during > before+conns*maxStr+200 {
		t.Errorf("%d goroutines during the flood, from %d before", during, before)
	}
	if rss > baseRSS+200<<10 {
		t.Errorf("VmRSS %d MB during the flood, from %d MB", rss>>10, baseRSS>>10)
	}

	// Every silent stream ends with its connection, which the server
	// closes; those waiting for room end with it, or on the connection
	// the client opens next.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		mu.Lock()
		open := conns*perConn - closed
		mu.Unlock() // the cleanup waits for the streams, which take mu
		t.Fatalf("%d of %d streams still open after 3 minutes", open, conns*perConn)
	}
	t.Logf("closed streams by status: %v", statuses)
	for _, c := range flooders {
		c.Close()
	}
	if statuses["Unavailable"] != conns*perConn {
		t.Errorf("statuses %v, want all %d Unavailable (the server closed their connections)", statuses, conns*perConn)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		n := goroutines(t, debug)
		if n <= before+20 {
			t.Logf("server goroutines after the flood: %d", n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines a minute after the flood, from %d before", n, before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHTTPTimeouts holds HTTP connections the way a slow or idle client
// would: a request whose body never comes, and a keep-alive connection
// left idle. The server closes both after its timeouts, and the debug
// server gets the same read and idle bounds.
func TestHTTPTimeouts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, reloadRulesV1)
	debug := freeAddr(t)
	p := startServe(t, nil, "--config", path, "--debug-addr", debug,
		"--http-read-timeout", "1s", "--http-idle-timeout", "1s")

	// closedBy reads from c until the server closes it and returns what
	// it sent; a minute without that fails the test.
	closedBy := func(c net.Conn, what string) string {
		t.Helper()
		if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the connection is still open after a minute", what)
		}
		return string(got)
	}
	for _, addr := range []string{p.HTTPAddr, debug} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Headers promise a body that never comes.
		if _, err := io.WriteString(c, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		closedBy(c, addr+": slow body")
	}

	c, err := net.Dial("tcp", p.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The answer comes, then the idle keep-alive connection is closed.
	if got := closedBy(c, "idle keep-alive"); !strings.HasPrefix(got, "HTTP/1.1 200 OK") || !strings.HasSuffix(got, "OK") {
		t.Errorf("answer %q", got)
	}
}

// peakRSSEnv, set to a file name, makes the test binary run its arguments
// as a command (see runMeasured) instead of the tests.
const peakRSSEnv = "ENVOY_RLS_TEST_PEAK_RSS"

// runMeasured runs args as a command with this process's standard
// streams, writes the command's peak RSS in kB to the file out, and
// returns its exit code. The tests run a command this way, through a
// fresh copy of the test binary, because Linux starts a child's peak RSS
// at its parent's when the parent spawns it (Go's vfork-like exec), and
// the test process itself is hundreds of MB: the small intermediate
// process keeps that floor low.
func runMeasured(out string, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "runMeasured:", err)
		return 125
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // kB on Linux
	if werr := os.WriteFile(out, []byte(strconv.FormatInt(peak, 10)), 0o600); werr != nil {
		fmt.Fprintln(os.Stderr, "runMeasured:", werr)
		return 125
	}
	return cmd.ProcessState.ExitCode()
}

// readPeakRSS reads the peak RSS in kB that runMeasured wrote to path.
func readPeakRSS(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("peak RSS: %v", err)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatalf("peak RSS %q: %v", b, err)
	}
	return n
}
