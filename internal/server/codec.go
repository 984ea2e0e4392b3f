package server

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// vtMessage is implemented by the messages go-control-plane generates
// vtprotobuf code for (RateLimitRequest, RateLimitResponse and what they
// hold): hand-unrolled codecs that skip protobuf's reflection.
type vtMessage interface {
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
}

// codec is the gRPC codec of the service: the vtprotobuf fast path where a
// message has one, standard protobuf otherwise (health messages).
type codec struct{}

func (codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(vtMessage); ok {
		return m.MarshalVT()
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("server: cannot marshal %T", v)
}

func (codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(vtMessage); ok {
		return m.UnmarshalVT(data)
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("server: cannot unmarshal into %T", v)
}

func (codec) Name() string { return "proto" }

// GRPCOptions are the server options the Service needs: its codec.
func GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodec(codec{})}
}
