package testservers

import (
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// ServeGRPC serves on a new gRPC server, made with opts and set up by
// register, on a free loopback port, and returns its address. The server
// stops, and its Serve goroutine is waited for, when h is done.
func ServeGRPC(h Harness, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	h.Helper()
	return ServeGRPCOn(h, func(l net.Listener) net.Listener { return l }, register, opts...)
}

// ServeGRPCOn is ServeGRPC on the listener wrap returns for a fresh
// loopback listener.
func ServeGRPCOn(h Harness, wrap func(net.Listener) net.Listener, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	h.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.Fatalf("testservers: gRPC listener: %v", err)
	}
	lis = wrap(lis)
	g := grpc.NewServer(opts...)
	register(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis) // returns nil after Stop; a listener error fails the clients
	}()
	h.Cleanup(func() {
		g.Stop()
		<-done
	})
	return lis.Addr().String()
}

// DialGRPC returns a plain-text client connection to addr with opts
// added, closed when h is done.
func DialGRPC(h Harness, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	h.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		h.Fatalf("testservers: dial %s: %v", addr, err)
	}
	h.Cleanup(func() { _ = conn.Close() })
	return conn
}
