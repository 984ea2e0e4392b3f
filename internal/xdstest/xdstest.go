// Package xdstest runs an xDS control plane for tests, built as Envoy
// Gateway builds the one that configures its rate-limit service
// (internal/globalratelimit/runner): go-control-plane's pkg/server/v3
// over a SnapshotCache made with NewSnapshotCache(false, IDHash{}),
// serving one RateLimitConfig resource per domain to one node id, on a
// gRPC server with TLS 1.3 and required client certificates.
//
// Start returns a running server on a free loopback port, with its
// certificates generated into a temporary directory; Server.TLS names
// the files a client needs. SetDomains publishes a snapshot; Stop and
// Restart stop the control plane and start a fresh one (a new, empty
// cache, as when Envoy Gateway restarts) on the same address; ACKs and
// NACKs are recorded for the test to observe.
package xdstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/envoy-rls/envoy-rls/internal/testservers"
)

// DefaultNodeID is the node id Envoy Gateway serves its rate-limit
// service as.
const DefaultNodeID = "envoy-ratelimit"

// Options configure a Server. The zero value is Envoy Gateway's setup.
type Options struct {
	// NodeID is the node the snapshots are set for; "" means
	// DefaultNodeID.
	NodeID string
	// Plaintext serves without TLS.
	Plaintext bool
}

// NACK is one refusal a client sent.
type NACK struct {
	// Version is the version of the refused response.
	Version string
	// Message is the client's error_detail message.
	Message string
}

// Server is a running control plane. Its methods are safe for concurrent
// use.
type Server struct {
	t      testing.TB
	nodeID string
	addr   string
	// TLS names the CA, server and client certificate files; empty with
	// Options.Plaintext.
	TLS testservers.TLSFiles
	tls *tls.Config

	mu       sync.Mutex
	cache    cachev3.SnapshotCache
	grpc     *grpc.Server
	cancel   context.CancelFunc
	served   chan struct{}     // closed when Serve returned
	versions map[string]string // response nonce → version
	acks     []string
	nacks    []NACK
	streams  int         // streams opened, over all restarts
	node     *core.Node  // the node of the last request that named one
	headers  metadata.MD // the gRPC metadata of the last stream opened
}

// Start starts a control plane on a free loopback port and stops it when
// the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{t: t, nodeID: opts.NodeID, versions: map[string]string{}}
	if s.nodeID == "" {
		s.nodeID = DefaultNodeID
	}
	if !opts.Plaintext {
		files, err := testservers.WriteTLSFiles(t.TempDir())
		if err != nil {
			t.Fatalf("xdstest: certificates: %v", err)
		}
		s.TLS = files
		if s.tls, err = serverTLS(files); err != nil {
			t.Fatalf("xdstest: %v", err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("xdstest: listen: %v", err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

// serverTLS is Envoy Gateway's server TLS: TLS 1.3, client certificates
// signed by the CA required.
func serverTLS(f testservers.TLSFiles) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.ServerCertFile, f.ServerKeyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA %s: no certificate", f.CAFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}, nil
}

// serve starts a fresh cache and gRPC server on l.
func (s *Server) serve(l net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	var opts []grpc.ServerOption
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	g := grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, serverv3.CallbackFuncs{
		StreamOpenFunc:     s.onOpen,
		StreamRequestFunc:  s.onRequest,
		StreamResponseFunc: s.onResponse,
	}))
	served := make(chan struct{})
	s.mu.Lock()
	s.cache, s.grpc, s.cancel, s.served = cache, g, cancel, served
	s.mu.Unlock()
	go func() { defer close(served); _ = g.Serve(l) }()
}

func (s *Server) onOpen(ctx context.Context, _ int64, _ string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams++
	s.headers = md.Copy()
	return nil
}

func (s *Server) onRequest(_ int64, req *discoverygrpc.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.GetNode() != nil {
		s.node = proto.Clone(req.GetNode()).(*core.Node)
	}
	switch {
	case req.GetErrorDetail() != nil:
		s.nacks = append(s.nacks, NACK{Version: s.versions[req.GetResponseNonce()], Message: req.GetErrorDetail().GetMessage()})
	case req.GetResponseNonce() != "":
		s.acks = append(s.acks, req.GetVersionInfo())
	}
	return nil
}

func (s *Server) onResponse(_ context.Context, _ int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.versions) > 10000 {
		clear(s.versions) // a storm's nonces; only recent ones matter
	}
	s.versions[resp.GetNonce()] = resp.GetVersionInfo()
}

// Addr returns the host:port the control plane listens on.
func (s *Server) Addr() string { return s.addr }

// SetDomains publishes a snapshot of version holding cfgs, one resource
// per domain, named after its domain (as Envoy Gateway names them) unless
// a name is set. It fails the test when the snapshot is not consistent.
func (s *Server) SetDomains(version string, cfgs ...*rlconfv3.RateLimitConfig) {
	s.t.Helper()
	res := make([]types.Resource, 0, len(cfgs))
	for _, c := range cfgs {
		if c.GetName() == "" {
			c.Name = c.GetDomain()
		}
		res = append(res, c)
	}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{resourcev3.RateLimitConfigType: res})
	if err != nil {
		s.t.Fatalf("xdstest: snapshot %s: %v", version, err)
	}
	s.mu.Lock()
	cache := s.cache
	s.mu.Unlock()
	if err := cache.SetSnapshot(context.Background(), s.nodeID, snap); err != nil {
		s.t.Fatalf("xdstest: set snapshot %s: %v", version, err)
	}
}

// Stop stops the control plane, closing its streams; a stopped server
// may be restarted. Stop is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	g, cancel, served := s.grpc, s.cancel, s.served
	s.grpc = nil
	s.mu.Unlock()
	if g == nil {
		return
	}
	cancel()
	g.Stop()
	<-served
}

// Restart stops the control plane if it runs and starts a fresh one, with
// an empty cache, on the same address. It fails the test when the
// address cannot be listened on again within a generous deadline.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.serve(l)
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("xdstest: listen again on %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ACKs returns the versions the clients ACKed, in order.
func (s *Server) ACKs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acks...)
}

// NACKs returns the refusals the clients sent, in order.
func (s *Server) NACKs() []NACK {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]NACK(nil), s.nacks...)
}

// Node returns the node of the last request that named one, nil before.
func (s *Server) Node() *core.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node
}

// Headers returns the gRPC metadata of the last stream opened.
func (s *Server) Headers() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers.Copy()
}

// Streams returns the number of streams opened, over all restarts.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// WaitACK waits until a client ACKed version, failing the test after a
// generous deadline.
func (s *Server) WaitACK(t testing.TB, version string) {
	t.Helper()
	waitFor(t, "ACK of version "+version, func() bool {
		for _, v := range s.ACKs() {
			if v == version {
				return true
			}
		}
		return false
	})
}

// WaitNACK waits until a client NACKed version and returns the first
// such NACK, failing the test after a generous deadline.
func (s *Server) WaitNACK(t testing.TB, version string) NACK {
	t.Helper()
	var got NACK
	waitFor(t, "NACK of version "+version, func() bool {
		for _, n := range s.NACKs() {
			if n.Version == version {
				got = n
				return true
			}
		}
		return false
	})
	return got
}

// waitFor polls cond until it holds or a deadline sized for a busy
// machine passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("xdstest: no %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
