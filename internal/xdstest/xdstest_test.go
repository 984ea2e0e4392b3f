package xdstest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/envoy-rls/envoy-rls/internal/xdstest"
)

// TestRequiresClientCertificate: as Envoy Gateway's control plane, the
// server refuses a client that trusts it but shows no certificate.
func TestRequiresClientCertificate(t *testing.T) {
	cp := xdstest.Start(t, xdstest.Options{})
	pem, err := os.ReadFile(cp.TLS.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := grpc.NewClient(cp.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err == nil {
		if err = stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: "x"}); err == nil {
			_, err = stream.Recv()
		}
	}
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a client without a certificate got an answer or hung: %v", err)
	}
	if cp.Streams() != 0 {
		t.Errorf("%d streams opened without a client certificate", cp.Streams())
	}
}
