package testservers

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// proc is one store server process (redis-server, memcached) that a test
// can stop and start again with the same command line: a Process at a
// time. It is safe for concurrent use.
type proc struct {
	// what names the server in errors, e.g. "redis-server on 127.0.0.1:6379".
	what string
	bin  string
	args []string
	// ready reports nil once the started server answers.
	ready func() error
	// detail, when set, adds to error messages (a log file's tail).
	detail  func() string
	timeout time.Duration

	mu sync.Mutex
	p  *Process // nil while stopped
}

// pid returns the process id of the running process, 0 when stopped.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil {
		return 0
	}
	return p.p.Pid()
}

// start launches the process and waits until ready answers. Start on a
// running process does nothing; on failure no process is left running.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil {
		return nil
	}
	started, err := StartProcess(context.Background(), ProcessOptions{
		Name:         p.what,
		Binary:       p.bin,
		Args:         p.args,
		Ready:        func(context.Context) error { return p.ready() },
		StartTimeout: p.timeout,
		Detail:       p.detail,
	})
	if err != nil {
		return err
	}
	p.p = started
	return nil
}

// stop kills the process, as a crash would, and waits for it to exit;
// stop on a stopped process does nothing.
func (p *proc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil {
		return
	}
	p.p.Kill()
	p.p = nil
}

// running reports whether the process is running.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.p != nil && !p.p.Exited()
}

// signal sends sig to the running process.
func (p *proc) signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil {
		return fmt.Errorf("%s: %v on a stopped server", p.what, sig)
	}
	return p.p.Signal(sig)
}
