package server

import (
	"context"
	"fmt"
	"runtime/debug"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
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

func (codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
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
func (s *Service) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodec(codec{}), grpc.ChainUnaryInterceptor(s.recoverer)}
}

func (s *Service) recoverer(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in a gRPC handler; the call fails, the service goes on",
				zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			resp, err = nil, status.Errorf(codes.Unavailable, "internal error in %s", info.FullMethod)
		}
	}()
	return handler(ctx, req)
}
