package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/tap"
)

// errNoRequest is the cause of a call closed by RecvDeadline. (gRPC
// answers the call itself, CANCELLED, as it does when a receive fails.)
var errNoRequest = errors.New("server: the client sent no request in time (--grpc-recv-timeout)")

// RecvDeadline returns the gRPC server options that close a call whose
// client opens the stream but does not send its request within d: a
// client that opens streams and sends nothing would otherwise hold a
// goroutine and its buffers for each stream for as long as the
// connection lives. The clock starts when the stream's headers arrive
// and stops once the first message has been received; the handler's
// own time is never limited by it: the service's unary interceptor (see
// GRPCOptions), which gRPC calls once the request is in, and a stream
// interceptor on the first received message stop the clock. d ≤ 0
// returns no option.
func RecvDeadline(d time.Duration) []grpc.ServerOption {
	if d <= 0 {
		return nil
	}
	return []grpc.ServerOption{
		grpc.InTapHandle(func(ctx context.Context, _ *tap.Info) (context.Context, error) {
			ctx, cancel := context.WithCancelCause(ctx)
			t := time.AfterFunc(d, func() { cancel(errNoRequest) })
			return context.WithValue(ctx, recvTimerKey{}, t), nil
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &recvDisarmer{ServerStream: ss})
		}),
	}
}

type recvTimerKey struct{}

// disarmRecv stops the receive deadline of the call of ctx, if it has
// one.
func disarmRecv(ctx context.Context) {
	if t, ok := ctx.Value(recvTimerKey{}).(*time.Timer); ok {
		t.Stop()
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
