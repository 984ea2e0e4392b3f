package server

import (
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The codec encodes what protobuf decodes back to the same message, on
// either path (go-control-plane's vtprotobuf code is built only with
// -tags vtprotobuf).
func TestCodecFastPathRoundTrips(t *testing.T) {
	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT,
		Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{
			Code:               rlsv3.RateLimitResponse_OVER_LIMIT,
			CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{Name: "n", RequestsPerUnit: 10, Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE, UnitMultiplier: wrapperspb.UInt32(5)},
			DurationUntilReset: durationpb.New(0),
		}},
		RawBody: []byte("slow down"),
	}
	if _, fast := any(resp).(vtMarshaler); !fast {
		t.Log("built without -tags vtprotobuf: responses take the protobuf path")
	}
	b, err := codec{}.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var back rlsv3.RateLimitResponse
	if err := (codec{}).Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(resp, &back) {
		t.Fatalf("round trip: %v != %v", &back, resp)
	}
	if _, err := (codec{}).Marshal(42); err == nil {
		t.Fatal("marshalled an int")
	}
}
