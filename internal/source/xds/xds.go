// Package xds is the xDS config source: it receives RateLimitConfig
// resources (one per domain) over a State-of-the-World ADS stream, as
// Envoy Gateway serves them to envoyproxy/ratelimit, and hands each good
// resource set to the limiter. It uses go-control-plane's SotW client.
//
// Behaviour:
//   - A good update is applied at once and ACKed; a bad one (any problem
//     in any resource) is NACKed with every problem in error_detail and
//     nothing of it is applied: the last good rules keep serving.
//   - An update equal to the rules already served is ACKed without a
//     new apply.
//   - go-control-plane's cache answers a NACK by sending the refused
//     snapshot again, at once, until a good one is published. The source
//     recognises a repeat by its content, reports it only once (one log
//     line, one refused-load count), skips rebuilding it, and sends at
//     most one NACK per RepeatDelay, so the loop costs a few messages a
//     second instead of hundreds. A good snapshot published meanwhile
//     still arrives within RepeatDelay.
//   - When the control plane is down or restarts, the last rules keep
//     serving, and the source redials with exponential backoff and
//     jitter. Every stream starts afresh (no version), so a control plane
//     that restarted with its versions back at "1" still sends its rules.
package xds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/client/sotw/v3"
	rlconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/envoy-rls/envoy-rls/internal/source"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// DefaultRepeatDelay is Options.RepeatDelay's default.
const DefaultRepeatDelay = 250 * time.Millisecond

// maxErrorDetail bounds the error_detail of a NACK, in bytes.
const maxErrorDetail = 16 << 10

// Options configure a Source. Server is required.
type Options struct {
	// Server is the control plane's address, host:port.
	Server string
	// NodeID is the node id sent to the control plane; "" means
	// "envoy-ratelimit", the id Envoy Gateway serves.
	NodeID string
	// NodeMetadata is the node's metadata; nil means none.
	NodeMetadata *structpb.Struct
	// Headers are sent as gRPC metadata on the stream.
	Headers map[string]string
	// TLS, when set, secures the connection (see TLSFiles); nil means
	// plaintext.
	TLS *TLSFiles
	// BackoffInitial and BackoffMax bound the wait between redials:
	// it starts at BackoffInitial, doubles after each failed attempt up
	// to BackoffMax, and is drawn at random from its upper half. Zero
	// values mean 1 s and 30 s.
	BackoffInitial, BackoffMax time.Duration
	// Check, when set, vets a resource set that built (for instance,
	// that the store can run its strategies); an error NACKs it.
	Check func(*descriptors.Config) error
	// RepeatDelay is how long the source waits before NACKing a refused
	// update it already NACKed; 0 means DefaultRepeatDelay.
	RepeatDelay time.Duration
	// Logger receives the source's logs; nil means none.
	Logger *zap.Logger
}

// TLSFiles name the PEM files of a TLS connection to the control plane.
// They are read at each dial, so rotated files take effect on the next
// connection.
type TLSFiles struct {
	// CAFile verifies the control plane; "" means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate (mutual TLS);
	// both or neither.
	CertFile, KeyFile string
	// ServerName is the name to verify; "" means the host of Server.
	ServerName string
}

// Source is the xDS config source. Build one with New; it runs once.
type Source struct {
	opts Options
	log  *zap.Logger
}

var _ source.Source = (*Source)(nil)

// New checks opts and returns a Source.
func New(opts Options) (*Source, error) {
	var errs []error
	if opts.Server == "" {
		errs = append(errs, errors.New("xds: no server address"))
	}
	if opts.TLS != nil && (opts.TLS.CertFile == "") != (opts.TLS.KeyFile == "") {
		errs = append(errs, errors.New("xds: a client certificate needs both a cert file and a key file"))
	}
	if opts.BackoffInitial < 0 || opts.BackoffMax < 0 || (opts.BackoffMax > 0 && opts.BackoffMax < opts.BackoffInitial) {
		errs = append(errs, fmt.Errorf("xds: bad backoff %v..%v", opts.BackoffInitial, opts.BackoffMax))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.NodeID == "" {
		opts.NodeID = "envoy-ratelimit"
	}
	if opts.BackoffInitial == 0 {
		opts.BackoffInitial = time.Second
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = max(30*time.Second, opts.BackoffInitial)
	}
	if opts.RepeatDelay <= 0 {
		opts.RepeatDelay = DefaultRepeatDelay
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Source{opts: opts, log: log.With(zap.String("xds_server", opts.Server))}, nil
}

// Name returns "xds".
func (s *Source) Name() string { return "xds" }

// Run streams from the control plane until ctx is done, redialling with
// backoff when the stream ends. It returns nil when ctx is done.
func (s *Source) Run(ctx context.Context, u source.Updates) error {
	st := &state{u: u}
	backoff := s.opts.BackoffInitial
	down := false // a failure was logged and no update arrived since
	for {
		got, err := s.session(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			backoff = s.opts.BackoffInitial
			down = false
		}
		if !down {
			s.log.Warn("xds: control plane stream ended; serving the last rules and redialling", zap.Error(err))
			down = true
		} else {
			s.log.Debug("xds: control plane still unreachable", zap.Error(err))
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, s.opts.BackoffMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// state is what the source remembers across streams; owned by Run.
type state struct {
	u           source.Updates
	applied     [sha256.Size]byte // digest of the resources served; zero before any
	haveApplied bool
	refused     [sha256.Size]byte // digest of the last refused resources
	refusedMsg  string            // the NACK message of refused
	haveRefused bool
	lastNack    time.Time // when the last NACK was sent
}

// session runs one stream: dial, subscribe, then handle responses until
// the stream fails. got reports whether any response arrived.
func (s *Source) session(ctx context.Context, st *state) (got bool, err error) {
	creds, err := s.credentials()
	if err != nil {
		return false, err
	}
	// Keepalive pings find a control plane that vanished without closing
	// the connection. A gRPC server's default policy (Envoy Gateway sets
	// none) answers pings more often than every 5 minutes with GOAWAY, so
	// ping less often than that.
	conn, err := grpc.NewClient(s.opts.Server, grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 6 * time.Minute, Timeout: 20 * time.Second}))
	if err != nil {
		return false, fmt.Errorf("xds: dial: %w", err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for k, v := range s.opts.Headers {
		sctx = metadata.AppendToOutgoingContext(sctx, k, v)
	}
	node := &core.Node{Id: s.opts.NodeID, Metadata: s.opts.NodeMetadata, UserAgentName: "envoy-rls"}
	client := sotw.NewADSClient(sctx, node, TypeURL)
	if err := client.InitConnect(conn); err != nil {
		return false, fmt.Errorf("xds: stream: %w", err)
	}
	for {
		resp, err := client.Fetch()
		if err != nil {
			return got, fmt.Errorf("xds: receive: %w", err)
		}
		if !got {
			s.log.Info("xds: receiving rules from the control plane")
			got = true
		}
		if err := s.handle(sctx, client, st, resp.Resources); err != nil {
			return got, err
		}
	}
}

// handle applies and ACKs one response, or NACKs it.
func (s *Source) handle(ctx context.Context, client sotw.ADSClient, st *state, resources []*anypb.Any) error {
	sum := digest(resources)
	if st.haveApplied && sum == st.applied {
		st.haveRefused = false
		return ack(client)
	}
	if !st.haveRefused || sum != st.refused {
		cfg, err := Build(resources)
		if err == nil && s.opts.Check != nil {
			err = s.opts.Check(cfg)
		}
		if err == nil {
			st.applied, st.haveApplied, st.haveRefused = sum, true, false
			st.u.Apply(cfg)
			return ack(client)
		}
		// A new refusal: reported once, however often it is re-sent.
		st.refused, st.refusedMsg, st.haveRefused = sum, errorDetail(err), true
		st.u.Refuse(err)
	}
	// NACKs are paced: the cache answers each one at once with the
	// refused snapshot again.
	if wait := time.Until(st.lastNack.Add(s.opts.RepeatDelay)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	st.lastNack = time.Now()
	if err := client.Nack(st.refusedMsg); err != nil {
		return fmt.Errorf("xds: send NACK: %w", err)
	}
	return nil
}

func ack(client sotw.ADSClient) error {
	if err := client.Ack(); err != nil {
		return fmt.Errorf("xds: send ACK: %w", err)
	}
	return nil
}

// digest identifies a resource set by its content, whatever the order of
// the resources (the cache keeps them in a map) and of the map entries
// in their encoding: each resource that decodes is encoded again
// deterministically.
func digest(resources []*anypb.Any) [sha256.Size]byte {
	sums := make([][sha256.Size]byte, len(resources))
	det := proto.MarshalOptions{Deterministic: true}
	for i, r := range resources {
		var rc rlconfv3.RateLimitConfig
		if r.GetTypeUrl() == TypeURL && proto.Unmarshal(r.GetValue(), &rc) == nil {
			if b, err := det.Marshal(&rc); err == nil {
				sums[i] = sha256.Sum256(b)
				continue
			}
		}
		sums[i] = sha256.Sum256(append([]byte(r.GetTypeUrl()+"\x00"), r.GetValue()...))
	}
	slices.SortFunc(sums, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, x := range sums {
		h.Write(x[:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// errorDetail is err's text, cut to maxErrorDetail bytes.
func errorDetail(err error) string {
	msg := err.Error()
	if len(msg) <= maxErrorDetail {
		return msg
	}
	i := maxErrorDetail
	for i > 0 && !utf8.RuneStart(msg[i]) {
		i--
	}
	return msg[:i] + "… (cut)"
}

// credentials returns the transport credentials, reading the TLS files.
func (s *Source) credentials() (credentials.TransportCredentials, error) {
	f := s.opts.TLS
	if f == nil {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("xds: TLS CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("xds: TLS CA %s: no certificate found", f.CAFile)
		}
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("xds: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}
