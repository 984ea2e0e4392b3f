package testservers

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// proc is one server process that a test can stop and start again with
// the same command line. It is safe for concurrent use.
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

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// pid returns the process id of the running process, 0 when stopped.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// start launches the process and waits until ready answers. Start on a
// running process does nothing; on failure no process is left running.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	cmd := exec.Command(p.bin, p.args...)
	out := new(LockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed server is expected
		close(exited)
	}()
	more := func() string {
		if p.detail == nil {
			return ""
		}
		return p.detail()
	}
	deadline := time.Now().Add(p.timeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start: %s%s", p.what, out.String(), more())
		default:
		}
		err := p.ready()
		if err == nil {
			p.cmd, p.exited = cmd, exited
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s did not answer within %s (%v): %s%s", p.what, p.timeout, err, out.String(), more())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the process and waits for it to exit; stop on a stopped
// process does nothing.
func (p *proc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill() // fails only when it has exited already
	<-p.exited
	p.cmd, p.exited = nil, nil
}

// running reports whether the process is running.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the running process.
func (p *proc) signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s: %v on a stopped server", p.what, sig)
	}
	return p.cmd.Process.Signal(sig)
}
