package memcachestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-rls/envoy-rls/pkg/limiter"
)

// The client: memcached's meta protocol (mg, ms, md, ma, mn; memcached
// 1.6 or later), pipelined on a few connections per server.
//
// Each server has Options.Connections flushers, goroutines that each own
// one connection. An exec hands the commands of a phase of an Apply call
// to their servers as one job per server; a flusher takes every job
// waiting for its server (those of concurrent calls too), writes all
// their commands in one write, reads the answers in order, and hands
// each job back. A phase of a call therefore costs one round trip per
// server it touches, shared with the other calls in flight, whatever the
// number of keys: the meta commands answer a counter's incr-or-create
// (ma with N and J) and a read with its CAS id (mg with c) in one
// command each.

// errNotSent is the error of a cmd not sent because the call's context
// had ended; the applier turns it into ctxError.
var errNotSent = errors.New("memcachestore: not sent")

// errMalformedKey is the error of a cmd whose key memcached would refuse
// (memcacheKey and windowKey never produce one).
var errMalformedKey = errors.New("memcachestore: malformed memcached key")

// errProtocol is wrapped by the error of an answer the client cannot
// parse; the connection is then closed.
var errProtocol = errors.New("memcachestore: unexpected answer from memcached")

// maxBatch bounds the jobs one flusher writes in one round trip.
const maxBatch = 128

// job is the commands of one exec for one server. The flusher that takes
// it answers every command and then signals done.
type job struct {
	ctx  context.Context
	cmds []*cmd
	done chan struct{} // capacity 1, reused from call to call
}

// server is one memcached server and its flushers.
type server struct {
	addr    net.Addr
	timeout time.Duration // of one round trip (dial, write, read)
	queue   chan *job     // unbuffered: a job sent is a job taken
	stop    <-chan struct{}
	// trips counts the round trips attempted (batches written); the tests
	// and benchmarks read it.
	trips atomic.Uint64
}

// newServers starts conns flushers for each address; they run until stop
// is closed, and wg counts them.
func newServers(addrs []net.Addr, conns int, timeout time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) []*server {
	srvs := make([]*server, len(addrs))
	for i, a := range addrs {
		srv := &server{addr: a, timeout: timeout, queue: make(chan *job), stop: stop}
		for range conns {
			wg.Go(srv.flush)
		}
		srvs[i] = srv
	}
	return srvs
}

// pick returns the index of the server of a memcached key: the CRC-32 of
// the key modulo the number of servers, as gomemcache's ServerList does.
func pick(key string, n int) int {
	if n == 1 {
		return 0
	}
	return int(crc32.ChecksumIEEE([]byte(key)) % uint32(n))
}

// exec runs cmds on their servers, one job per server, and fills in their
// answers; jobs is the caller's scratch, one per server. It returns when
// every command is answered or has failed. A command is not sent when ctx
// ends before a flusher takes its job.
func (s *Store) exec(ctx context.Context, cmds []cmd, jobs []job) {
	for i := range jobs {
		jobs[i].cmds = jobs[i].cmds[:0]
	}
	for i := range cmds {
		c := &cmds[i]
		c.res, c.err, c.val, c.num, c.casID = resOK, nil, nil, 0, 0
		if !legalKey(c.key) {
			c.err = errMalformedKey
			continue
		}
		j := &jobs[pick(c.key, len(s.servers))]
		j.cmds = append(j.cmds, c)
	}
	s.send(ctx, jobs)
}

// send hands each job with commands to the server of the same index and
// waits until all are done.
func (s *Store) send(ctx context.Context, jobs []job) {
	for i := range jobs {
		j := &jobs[i]
		if len(j.cmds) == 0 {
			continue
		}
		if j.done == nil {
			j.done = make(chan struct{}, 1)
		}
		j.ctx = ctx
		select {
		case s.servers[i].queue <- j:
			continue
		case <-s.stop:
			j.fail(fmt.Errorf("%w: %w", ErrClosed, limiter.ErrUnavailable))
		case <-ctx.Done():
			j.fail(errNotSent)
		}
		clear(j.cmds)
		j.cmds, j.ctx = j.cmds[:0], nil
	}
	for i := range jobs {
		if j := &jobs[i]; len(j.cmds) > 0 {
			<-j.done
			clear(j.cmds)
			j.cmds, j.ctx = j.cmds[:0], nil
		}
	}
}

func (j *job) fail(err error) {
	for _, c := range j.cmds {
		c.err = err
	}
}

// legalKey reports whether memcached accepts key: 1 to 250 bytes, no
// whitespace or control characters.
func legalKey(key string) bool {
	if len(key) == 0 || len(key) > maxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// flush is a flusher: it takes the jobs waiting for its server, runs them
// in one round trip on its connection, and repeats until stop.
func (srv *server) flush() {
	var cn *mconn
	defer func() {
		if cn != nil {
			cn.close()
		}
	}()
	batch := make([]*job, 0, maxBatch)
	live := make([]*job, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case j := <-srv.queue:
			batch = append(batch, j)
		case <-srv.stop:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case j := <-srv.queue:
				batch = append(batch, j)
			default:
				break more
			}
		}
		live = live[:0]
		for _, j := range batch {
			if j.ctx.Err() != nil {
				j.fail(errNotSent)
			} else {
				live = append(live, j)
			}
		}
		if len(live) > 0 {
			srv.trips.Add(1)
			cn = srv.run(cn, live)
		}
		for i, j := range batch {
			j.done <- struct{}{}
			batch[i] = nil
		}
		clear(live)
	}
}

// run sends the commands of jobs on cn (dialled when nil) and reads their
// answers. It returns the connection to use next: nil after an error,
// which closes cn (the answers would be out of step).
func (srv *server) run(cn *mconn, jobs []*job) *mconn {
	// The round trip may take until the latest deadline of its jobs (a
	// job answered after its own deadline is still answered), and never
	// more than one timeout.
	now := time.Now()
	deadline := now.Add(srv.timeout)
	var latest time.Time
	for _, j := range jobs {
		d, ok := j.ctx.Deadline()
		if !ok {
			d = deadline
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.Before(deadline) {
		deadline = latest
	}
	if cn == nil {
		var err error
		cn, err = dial(srv.addr, deadline)
		if err != nil {
			failAll(jobs, err)
			return nil
		}
	}
	if err := cn.roundTrip(jobs, deadline); err != nil {
		cn.close()
		return nil
	}
	return cn
}

func failAll(jobs []*job, err error) {
	for _, j := range jobs {
		j.fail(err)
	}
}

// mconn is one connection to a memcached server.
type mconn struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	num []byte // scratch for numbers
}

func dial(addr net.Addr, deadline time.Time) (*mconn, error) {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial(addr.Network(), addr.String())
	if err != nil {
		return nil, fmt.Errorf("memcachestore: dial %s: %w", addr, err)
	}
	return &mconn{nc: nc, r: bufio.NewReaderSize(nc, 16<<10), w: bufio.NewWriterSize(nc, 16<<10)}, nil
}

func (cn *mconn) close() { _ = cn.nc.Close() }

// roundTrip writes the commands of jobs and reads their answers. On an
// error every command not yet answered gets it, and the error is
// returned: the connection must be closed.
func (cn *mconn) roundTrip(jobs []*job, deadline time.Time) error {
	fail := func(err error) error {
		for _, j := range jobs {
			for _, c := range j.cmds {
				if !c.answered {
					c.err = err
				}
			}
		}
		return err
	}
	if err := cn.nc.SetDeadline(deadline); err != nil {
		return fail(fmt.Errorf("memcachestore: %w", err))
	}
	for _, j := range jobs {
		for _, c := range j.cmds {
			c.answered = false
			cn.write(c)
		}
	}
	if err := cn.w.Flush(); err != nil {
		return fail(fmt.Errorf("memcachestore: write: %w", err))
	}
	for _, j := range jobs {
		for _, c := range j.cmds {
			if err := cn.read(c); err != nil {
				return fail(err)
			}
			c.answered = true
		}
	}
	return nil
}

// write buffers the meta command of c.
func (cn *mconn) write(c *cmd) {
	w := cn.w
	switch c.op {
	case cmdNoop:
		_, _ = w.WriteString("mn\r\n")
		return
	case cmdGet:
		_, _ = w.WriteString("mg ")
		_, _ = w.WriteString(c.key)
		_, _ = w.WriteString(" v c\r\n")
		return
	case cmdIncr:
		// Create the counter with the value delta when missing (N: with
		// this expiration; J: initial value), else add delta.
		_, _ = w.WriteString("ma ")
		_, _ = w.WriteString(c.key)
		cn.flag(" N", int64(c.exp))
		cn.uflag(" J", c.delta)
		cn.uflag(" D", c.delta)
		_, _ = w.WriteString(" v\r\n")
		return
	case cmdDecr:
		_, _ = w.WriteString("ma ")
		_, _ = w.WriteString(c.key)
		_, _ = w.WriteString(" MD")
		cn.uflag(" D", c.delta)
		_, _ = w.WriteString(" v\r\n")
		return
	case cmdDelete:
		_, _ = w.WriteString("md ")
		_, _ = w.WriteString(c.key)
		cn.uflag(" C", c.cas)
		_, _ = w.WriteString("\r\n")
		return
	}
	// cmdAdd, cmdCAS
	_, _ = w.WriteString("ms ")
	_, _ = w.WriteString(c.key)
	cn.flag(" ", int64(len(c.value)))
	cn.flag(" T", int64(c.exp))
	if c.op == cmdAdd {
		_, _ = w.WriteString(" ME")
	} else {
		cn.uflag(" C", c.cas)
	}
	_, _ = w.WriteString("\r\n")
	_, _ = w.Write(c.value)
	_, _ = w.WriteString("\r\n")
}

func (cn *mconn) flag(prefix string, v int64) {
	_, _ = cn.w.WriteString(prefix)
	cn.num = strconv.AppendInt(cn.num[:0], v, 10)
	_, _ = cn.w.Write(cn.num)
}

func (cn *mconn) uflag(prefix string, v uint64) {
	_, _ = cn.w.WriteString(prefix)
	cn.num = strconv.AppendUint(cn.num[:0], v, 10)
	_, _ = cn.w.Write(cn.num)
}

// read reads the answer of c. An error answer of memcached (CLIENT_ERROR,
// SERVER_ERROR) is c's error, and the connection stays usable; a
// returned error means the connection is not.
func (cn *mconn) read(c *cmd) error {
	line, err := cn.r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("memcachestore: read: %w", err)
	}
	line = bytes.TrimRight(line, "\r\n")
	code, rest, _ := bytes.Cut(line, []byte{' '})
	switch string(code) {
	case "VA":
		sizeTok, flags, _ := bytes.Cut(rest, []byte{' '})
		size, err := strconv.Atoi(string(sizeTok))
		if err != nil || size < 0 || size > 1<<20 {
			return fmt.Errorf("%w: %q", errProtocol, line)
		}
		for _, f := range bytes.Fields(flags) {
			if f[0] == 'c' {
				if c.casID, err = strconv.ParseUint(string(f[1:]), 10, 64); err != nil {
					return fmt.Errorf("%w: %q", errProtocol, line)
				}
			}
		}
		v := make([]byte, size+2)
		if _, err := io.ReadFull(cn.r, v); err != nil {
			return fmt.Errorf("memcachestore: read: %w", err)
		}
		if v[size] != '\r' || v[size+1] != '\n' {
			return fmt.Errorf("%w: value not ended by CRLF", errProtocol)
		}
		v = v[:size]
		switch c.op {
		case cmdGet:
			c.val = v
		case cmdIncr, cmdDecr:
			if c.num, err = strconv.ParseUint(string(bytes.TrimRight(v, " ")), 10, 64); err != nil {
				return fmt.Errorf("%w: count %q", errProtocol, v)
			}
		default:
			return fmt.Errorf("%w: %q", errProtocol, line)
		}
	case "HD":
		if c.op == cmdGet || c.op == cmdIncr || c.op == cmdDecr {
			return fmt.Errorf("%w: %q", errProtocol, line)
		}
	case "MN":
		if c.op != cmdNoop {
			return fmt.Errorf("%w: %q", errProtocol, line)
		}
	case "EN", "NF":
		switch c.op {
		case cmdGet, cmdDecr:
			c.res = resMiss
		case cmdCAS, cmdDelete:
			c.res = resConflict
		default:
			return fmt.Errorf("%w: %q", errProtocol, line)
		}
	case "NS", "EX":
		if c.op != cmdAdd && c.op != cmdCAS && c.op != cmdDelete {
			return fmt.Errorf("%w: %q", errProtocol, line)
		}
		c.res = resConflict
	case "CLIENT_ERROR":
		c.err = fmt.Errorf("%w: %s", errClientError, rest)
	case "SERVER_ERROR":
		c.err = fmt.Errorf("memcachestore: server error: %s", rest)
	default:
		return fmt.Errorf("%w: %q", errProtocol, line)
	}
	return nil
}
