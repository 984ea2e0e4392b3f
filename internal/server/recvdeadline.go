package server

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"
)

// NewRecvGuard returns the guard that closes the connection of a client
// that opens a stream but does not send its request within d: such a
// client would otherwise hold a goroutine and its buffers for each
// stream for as long as the connection lives. The clock starts when the
// stream's headers arrive and stops once the first message has been
// received; the handler's own time is never limited by it: the
// service's unary interceptor (see GRPCOptions), which gRPC calls once
// the request is in, and a stream interceptor on the first received
// message stop the clock. A connection holding a silent stream is closed
// between d and 1.25 d after that stream's headers; its other calls end
// with it (a well-behaved client sends a request with its headers, so
// only a broken or hostile one is closed). A stream the client resets
// before sending is forgotten, its connection kept.
//
// The server must serve on Listener's listener and with Options. d ≤ 0
// returns nil, whose Options are none and whose Listener is the one
// given.
//
// Closing the connection rather than the stream is what keeps the guard
// cheap: closing one stream needs a cancellable context per stream,
// which cost several µs of CPU per call under load (allocations, and the
// stream's context then tracks a child), while the guard costs each call
// one small allocation, a lock and a map insert and delete.
func NewRecvGuard(d time.Duration) *RecvGuard {
	if d <= 0 {
		return nil
	}
	g := &RecvGuard{tick: max(d/4, time.Millisecond)}
	for i := range g.shards {
		g.shards[i].waiting = make(map[*recvCtx]struct{})
	}
	return g
}

// Options returns the gRPC server options that start and stop the clock
// of each stream.
func (g *RecvGuard) Options() []grpc.ServerOption {
	if g == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.InTapHandle(func(ctx context.Context, _ *tap.Info) (context.Context, error) {
			return g.arm(ctx), nil
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &recvDisarmer{ServerStream: ss})
		}),
	}
}

// Listener returns l with its connections made closable by the guard.
func (g *RecvGuard) Listener(l net.Listener) net.Listener {
	if g == nil {
		return l
	}
	return guardedListener{l}
}

// recvShards is the number of independently locked parts of a
// recvGuard's set of waiting streams.
const recvShards = 16

// RecvGuard keeps the streams waiting for their request and closes the
// connections of those that wait too long. One timer, not one per
// stream, does it: it fires every quarter of the deadline while any
// stream waits, advancing a generation count; a stream armed in
// generation G is dealt with by the sweep that reaches generation G+5,
// after between 4 and 5 quarters.
type RecvGuard struct {
	tick   time.Duration
	gen    atomic.Uint64
	armed  atomic.Bool // the sweep timer is set, or a sweep is running
	closed atomic.Int64
	shards [recvShards]recvShard
}

type recvShard struct {
	mu      sync.Mutex
	waiting map[*recvCtx]struct{}
	_       [40]byte // keeps neighbouring shards off one cache line
}

// recvCtx is the context of a stream whose request has not arrived yet:
// the stream's context, which also records where the guard keeps it.
type recvCtx struct {
	context.Context
	shard *recvShard
	gen   uint64
}

type recvCtxKey struct{}

func (c *recvCtx) Value(k any) any {
	if k == (recvCtxKey{}) {
		return c
	}
	return c.Context.Value(k)
}

// arm returns the context of a new stream, kept until disarm or the
// deadline.
func (g *RecvGuard) arm(ctx context.Context) context.Context {
	c := &recvCtx{Context: ctx, shard: &g.shards[rand.Uint32()%recvShards], gen: g.gen.Load()}
	c.shard.mu.Lock()
	c.shard.waiting[c] = struct{}{}
	c.shard.mu.Unlock()
	// Inserted before reading armed: a sweep that found the set empty
	// cleared armed before it looked, so either it saw c or this arms.
	if !g.armed.Load() && g.armed.CompareAndSwap(false, true) {
		time.AfterFunc(g.tick, g.sweep)
	}
	return c
}

// sweep advances the generation, closes the connections of the streams
// that waited a whole deadline (forgetting those that ended), and sets
// the timer again while any stream waits.
func (g *RecvGuard) sweep() {
	gen := g.gen.Add(1)
	g.armed.Store(false)
	var expired []*recvCtx
	left := 0
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for c := range sh.waiting {
			if gen-c.gen >= 5 {
				delete(sh.waiting, c)
				expired = append(expired, c)
			}
		}
		left += len(sh.waiting)
		sh.mu.Unlock()
	}
	for _, c := range expired {
		if c.Err() != nil {
			continue // the stream ended (the client reset it, or its connection closed)
		}
		if p, ok := peer.FromContext(c); ok {
			if a, ok := p.Addr.(guardedAddr); ok && a.conn.closing.CompareAndSwap(false, true) {
				g.closed.Add(1) // before Close, whose effect the client may see at once
				a.conn.Conn.Close()
			}
		}
	}
	if left > 0 && g.armed.CompareAndSwap(false, true) {
		time.AfterFunc(g.tick, g.sweep)
	}
}

// guardedListener accepts connections that the guard can close: their
// remote address, which gRPC records as the peer of each stream (through
// TLS too), leads back to them.
type guardedListener struct{ net.Listener }

func (l guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardedConn{Conn: c}, nil
}

// guardedConn is an accepted connection whose remote address leads back
// to it. (gRPC sets TCP_USER_TIMEOUT only on a *net.TCPConn, so it no
// longer does on these; its keepalive pings still find a dead peer.)
type guardedConn struct {
	net.Conn
	closing atomic.Bool // the guard closes it
}

func (c *guardedConn) RemoteAddr() net.Addr {
	return guardedAddr{Addr: c.Conn.RemoteAddr(), conn: c}
}

// guardedAddr is a connection's remote address, and the connection.
type guardedAddr struct {
	net.Addr
	conn *guardedConn
}

// disarmRecv stops the receive deadline of the call of ctx, if it has
// one.
func disarmRecv(ctx context.Context) {
	if c, ok := ctx.Value(recvCtxKey{}).(*recvCtx); ok {
		c.shard.mu.Lock()
		delete(c.shard.waiting, c)
		c.shard.mu.Unlock()
	}
}

// recvDisarmer stops the receive deadline of a streaming call once its
// first message has been received.
type recvDisarmer struct {
	grpc.ServerStream
	done bool
}

func (r *recvDisarmer) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if !r.done {
		r.done = true
		disarmRecv(r.Context())
	}
	return err
}
