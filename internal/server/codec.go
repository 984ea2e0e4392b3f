package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/envoy-rls/envoy-rls/internal/telemetry"
)

// vtMarshaler is implemented by the messages go-control-plane generates
// vtprotobuf marshalling code for (RateLimitResponse and what it holds):
// hand-unrolled encoders that skip protobuf's reflection. That code is
// compiled only with `-tags vtprotobuf`; without the tag every message
// takes the protobuf path. go-control-plane generates no vtprotobuf
// decoders, so requests always go through protobuf.
type vtMarshaler interface {
	MarshalVTStrict() ([]byte, error)
}

// codec is the gRPC codec of the service: the vtprotobuf fast path where a
// message has one, standard protobuf otherwise.
type codec struct{}

func (codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(vtMarshaler); ok {
		return m.MarshalVTStrict()
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("server: cannot marshal %T", v)
}

// Unmarshal decodes a protobuf message. gRPC answers INTERNAL to a
// message that does not decode, so for the service's own requests (see
// request) the error is recorded in the request instead of returned.
func (codec) Unmarshal(data []byte, v any) error {
	if r, ok := v.(*request); ok {
		if err := proto.Unmarshal(data, r.RateLimitRequest); err != nil {
			r.err = fmt.Errorf("invalid request: cannot decode a RateLimitRequest: %w", err)
		}
		return nil
	}
	if m, ok := v.(proto.Message); ok {
		if err := proto.Unmarshal(data, m); err != nil {
			return fmt.Errorf("server: the request is not a valid %s: %w", m.ProtoReflect().Descriptor().Name(), err)
		}
		return nil
	}
	return fmt.Errorf("server: cannot unmarshal into %T", v)
}

func (codec) Name() string { return "proto" }

// Codec returns the service's gRPC codec, for servers that must run on the
// same stack (the benchmark's no-op ceiling).
func Codec() encoding.Codec { return codec{} }

// GRPCOptions are the server options the Service needs: its codec, and an
// interceptor that turns a panic in a handler (a bug) into UNAVAILABLE
// for that call, logged with its stack, instead of a crashed process.
// The interceptor also stops the call's RecvDeadline clock: gRPC calls
// it once the request has been received.
func (s *Service) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodec(codec{}), grpc.ChainUnaryInterceptor(s.recoverer)}
}

func (s *Service) recoverer(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	disarmRecv(ctx)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in a gRPC handler; the call fails, the service goes on",
				zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			resp, err = nil, status.Errorf(codes.Unavailable, "internal error in %s", info.FullMethod)
		}
	}()
	return handler(ctx, req)
}

// serviceDesc is RateLimitService's description with the generated
// ShouldRateLimit handler replaced by shouldRateLimitHandler.
func serviceDesc() *grpc.ServiceDesc {
	d := rlsv3.RateLimitService_ServiceDesc
	d.Methods = slices.Clone(d.Methods)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "ShouldRateLimit" {
			d.Methods[i].Handler = shouldRateLimitHandler
		}
	}
	return &d
}

// request is what shouldRateLimitHandler receives a RateLimitRequest
// into. The service's codec decodes into the embedded message and
// records a decoding error in err rather than failing the receive: gRPC
// answers a failed receive itself, with INTERNAL, before the handler can
// say INVALID_ARGUMENT. Any other protobuf codec decodes it as the
// embedded message and fails as before.
type request struct {
	*rlsv3.RateLimitRequest
	err error
}

// shouldRateLimitHandler is the generated handler of ShouldRateLimit
// with one change: bytes that do not decode as a RateLimitRequest
// (invalid wire format, invalid UTF-8 in a string) get INVALID_ARGUMENT
// naming the problem, for they are the client's error.
func shouldRateLimitHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Service)
	r := request{RateLimitRequest: new(rlsv3.RateLimitRequest)}
	if err := dec(&r); err != nil {
		disarmRecv(ctx)
		return nil, err
	}
	if r.err != nil {
		disarmRecv(ctx)
		s.metrics.ObserveRequest(telemetry.ResultInvalid, 0)
		return nil, status.Error(codes.InvalidArgument, r.err.Error())
	}
	if interceptor == nil {
		return s.ShouldRateLimit(ctx, r.RateLimitRequest)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: rlsv3.RateLimitService_ShouldRateLimit_FullMethodName}
	return interceptor(ctx, r.RateLimitRequest, info, func(ctx context.Context, req any) (any, error) {
		return s.ShouldRateLimit(ctx, req.(*rlsv3.RateLimitRequest))
	})
}
