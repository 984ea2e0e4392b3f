package testservers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/envoy-rls/envoy-rls/internal/defaults"
)

// Defaults of ProcessOptions.
const (
	defaultStartTimeout = 30 * time.Second
	defaultStopGrace    = 10 * time.Second
	defaultOutputLimit  = 4 << 20
)

// ProcessOptions describe a child process for StartProcess. Binary is
// required; the zero value of every other field is its default.
type ProcessOptions struct {
	// Name names the process in errors and logs ("envoy-rls"); the
	// default is Binary.
	Name string
	// Binary is the program to run.
	Binary string
	// Args are its arguments.
	Args []string
	// Env is added to this process's environment, or, with OnlyEnv,
	// is the whole environment of the child.
	Env     []string
	OnlyEnv bool
	// Ready reports nil once the started process serves; StartProcess
	// calls it until then. Nil means the process is taken to serve as
	// soon as it runs.
	Ready func(ctx context.Context) error
	// StartTimeout bounds the wait for Ready (default 30 s).
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before it kills
	// the process (default 10 s).
	StopGrace time.Duration
	// OutputLimit is how many bytes of the latest output (stdout and
	// stderr together) are kept for Output and error messages (default
	// 4 MiB).
	OutputLimit int
	// Detail, when set, adds to error messages what the output lacks,
	// such as the tail of a log file.
	Detail func() string
}

// Process is a running child process whose output is kept in a bounded
// buffer. Its methods are safe for concurrent use.
type Process struct {
	name   string
	args   []string
	cmd    *exec.Cmd
	out    *tailBuffer
	detail func() string
	grace  time.Duration

	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts o.Binary and waits until o.Ready reports nil. It
// fails when the process cannot start, exits first, or is not ready
// within o.StartTimeout or before ctx is done; then no process is left
// running and the error holds the output. The caller owns the returned
// Process and must Stop or Kill it.
func StartProcess(ctx context.Context, o ProcessOptions) (*Process, error) {
	if o.Binary == "" {
		return nil, errors.New("testservers: process without a binary")
	}
	if o.Name == "" {
		o.Name = o.Binary
	}
	o.StartTimeout = defaults.Positive(o.StartTimeout, defaultStartTimeout)
	o.StopGrace = defaults.Positive(o.StopGrace, defaultStopGrace)
	o.OutputLimit = defaults.Positive(o.OutputLimit, defaultOutputLimit)
	p := &Process{
		name:   o.Name,
		args:   o.Args,
		cmd:    exec.Command(o.Binary, o.Args...),
		out:    newTailBuffer(o.OutputLimit),
		detail: o.Detail,
		grace:  o.StopGrace,
		done:   make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if o.OnlyEnv {
		p.cmd.Env = append([]string{}, o.Env...)
	} else if o.Env != nil {
		p.cmd.Env = append(os.Environ(), o.Env...)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testservers: start %s: %w", o.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if o.Ready == nil {
		return p, nil
	}
	// The wait ends early when the process exits.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-wctx.Done():
		}
	}()
	err := WaitFor(wctx, o.StartTimeout, o.Ready)
	if err == nil {
		return p, nil
	}
	early := p.Exited()
	p.Kill()
	if early {
		return nil, fmt.Errorf("testservers: %s exited before it served (%v):\n%s%s", o.Name, p.err, p.Output(), p.more())
	}
	return nil, fmt.Errorf("testservers: %s: %w:\n%s%s", o.Name, err, p.Output(), p.more())
}

func (p *Process) more() string {
	if p.detail == nil {
		return ""
	}
	return p.detail()
}

// WaitFor calls probe until it reports nil, every 50 ms, each call
// bounded by ctx and the time left. It returns the last probe error when
// timeout passes first, or ctx's error when ctx is done first.
func WaitFor(ctx context.Context, timeout time.Duration, probe func(ctx context.Context) error) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := probe(tctx)
		if err == nil {
			return nil
		}
		select {
		case <-tctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("waiting: %w (last: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("not ready within %s (last: %w)", timeout, err)
		case <-tick.C:
		}
	}
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns the kept output: all of it, or, beyond OutputLimit
// bytes, a line saying how much was dropped and then the latest.
func (p *Process) Output() string { return p.out.String() }

// OutputLines returns the number of lines the process has written in
// all, including those Output no longer holds.
func (p *Process) OutputLines() int64 { return p.out.Lines() }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return fmt.Errorf("testservers: %v to %s, which has exited", sig, p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// Done returns a channel that is closed once the process has exited and
// been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the process's exit error (nil for status 0), once Done is
// closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop asks the process to end (SIGTERM), kills it when it has not
// exited StopGrace later, and reaps it. It returns nil when the process
// exited with status 0, else what went wrong. Stop may be called more
// than once and after the process exited; it returns the same answer.
func (p *Process) Stop() error { return p.StopWithin(p.grace) }

// StopWithin is Stop with grace instead of the options' StopGrace; only
// the first Stop or StopWithin acts.
func (p *Process) StopWithin(grace time.Duration) error {
	p.stopOnce.Do(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only when it has just exited
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-p.done:
			case <-t.C:
				p.Kill()
				p.stopErr = fmt.Errorf("testservers: %s did not exit within %s of SIGTERM; killed", p.name, grace)
				return
			}
		}
		if p.err != nil {
			p.stopErr = fmt.Errorf("testservers: %s: %w", p.name, p.err)
		}
	})
	return p.stopErr
}

// Kill kills the process at once (SIGKILL), as a crash would end it,
// and waits until it is reaped.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill() // fails only when it has just exited
	}
	<-p.done
}

// String returns the name and command line, for logs.
func (p *Process) String() string {
	return p.name + " (" + strings.Join(append([]string{p.cmd.Path}, p.args...), " ") + ")"
}

// RunProcess starts a process as StartProcess does, for a test or
// another Harness: a failed start fails h, and when h is done the process
// is stopped and, if h is a test that failed, its output is logged.
func RunProcess(h Harness, o ProcessOptions) *Process {
	h.Helper()
	p, err := StartProcess(context.Background(), o)
	if err != nil {
		h.Fatalf("%v", err)
	}
	own(h, p)
	return p
}

// own has h stop p when done and log its output when h failed.
func own(h Harness, p *Process) {
	h.Cleanup(func() {
		_ = p.Stop() // how it stopped is the test's business, if any
		if f, ok := h.(interface {
			Failed() bool
			Logf(format string, args ...any)
		}); ok && f.Failed() {
			f.Logf("%s output:\n%s", p, p.Output())
		}
	})
}

// StartOnFreePorts chooses n loopback addresses ("127.0.0.1:port") that
// were free a moment ago, has build describe the process that uses them,
// and starts it as StartProcess does. When the process exits before it
// serves because one of the addresses was taken in between ("address
// already in use" in its output), it tries again with other addresses, up
// to five times. It returns the process and its addresses.
func StartOnFreePorts(ctx context.Context, n int, build func(addrs []string) ProcessOptions) (*Process, []string, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var addrs []string
		if addrs, err = FreeAddrs(n); err != nil {
			return nil, nil, err
		}
		var p *Process
		if p, err = StartProcess(ctx, build(addrs)); err == nil {
			return p, addrs, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, nil, err
}

// RunOnFreePorts is StartOnFreePorts for a test or another Harness, as
// RunProcess is StartProcess's.
func RunOnFreePorts(h Harness, n int, build func(addrs []string) ProcessOptions) (*Process, []string) {
	h.Helper()
	p, addrs, err := StartOnFreePorts(context.Background(), n, build)
	if err != nil {
		h.Fatalf("%v", err)
	}
	own(h, p)
	return p, addrs
}

// FreeAddrs returns n distinct loopback addresses whose ports were free
// a moment ago.
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	seen := map[int]bool{}
	for len(addrs) < n {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("testservers: %w", err)
		}
		if !seen[port] {
			seen[port] = true
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
		}
	}
	return addrs, nil
}

// tailBuffer keeps the last max bytes written to it and counts the
// lines of everything written. It is safe for the concurrent writes of a
// process's stdout and stderr while another goroutine reads it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	b       []byte
	dropped int64
	lines   int64
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

// Write keeps p; it never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines += int64(bytes.Count(p, []byte{'\n'}))
	t.b = append(t.b, p...)
	// Trim only once twice the limit is held, so that a write costs
	// amortised O(len(p)).
	if len(t.b) > 2*t.max {
		cut := len(t.b) - t.max
		t.dropped += int64(cut)
		t.b = append(t.b[:0], t.b[cut:]...)
	}
	return len(p), nil
}

// String returns the last max bytes, after a line saying how many bytes
// before them were dropped, if any.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, dropped := t.b, t.dropped
	if len(b) > t.max {
		dropped += int64(len(b) - t.max)
		b = b[len(b)-t.max:]
	}
	if dropped == 0 {
		return string(b)
	}
	return fmt.Sprintf("[%d earlier bytes dropped]\n%s", dropped, b)
}

// Lines returns the number of newlines written in all.
func (t *tailBuffer) Lines() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lines
}
