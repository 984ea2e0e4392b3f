package settings

import (
	"flag"
	"fmt"
	"math"
	"time"
)

// Input bounds what config files and clients can make the service hold:
// the bytes of a config load, the streams of a gRPC connection and how
// long they may wait for their request, and how long the HTTP servers
// wait for a slow or idle client.
type Input struct {
	// ConfigMaxBytes bounds the config files of one load together
	// (--config-max-bytes); `envoy-rls validate` applies it too.
	ConfigMaxBytes int64
	// GRPCMaxConcurrentStreams bounds the streams of one gRPC
	// connection; a client that opens more waits for one to finish.
	GRPCMaxConcurrentStreams uint
	// GRPCRecvTimeout is how long a gRPC call may take to send its
	// request once its stream is open; 0 turns the bound off.
	GRPCRecvTimeout time.Duration
	// HTTPReadTimeout, HTTPWriteTimeout and HTTPIdleTimeout bound reading
	// a request, writing its answer and keeping an idle keep-alive
	// connection on the HTTP and debug servers. DebugWriteTimeout
	// replaces HTTPWriteTimeout on the debug server, where a CPU profile
	// takes 30 s by default.
	HTTPReadTimeout   time.Duration
	HTTPWriteTimeout  time.Duration
	HTTPIdleTimeout   time.Duration
	DebugWriteTimeout time.Duration
}

// DefaultConfigMaxBytes is the default of --config-max-bytes (2 MiB, as
// descriptors.DefaultMaxBytes).
const DefaultConfigMaxBytes = 2 << 20

// inputFlags defines the flags of in on fs.
func inputFlags(fs *flag.FlagSet, in *Input) {
	fs.Int64Var(&in.ConfigMaxBytes, "config-max-bytes", DefaultConfigMaxBytes, "largest config in bytes, all files of a directory together; a larger one is refused at start and on reload")
	fs.UintVar(&in.GRPCMaxConcurrentStreams, "grpc-max-concurrent-streams", 1000, "gRPC: most concurrent calls on one connection; a client waits for a free one beyond it")
	fs.DurationVar(&in.GRPCRecvTimeout, "grpc-recv-timeout", 10*time.Second, "gRPC: how long a call may take to send its request after opening its stream before its connection is closed (0: no bound)")
	fs.DurationVar(&in.HTTPReadTimeout, "http-read-timeout", 10*time.Second, "HTTP and debug servers: the longest reading one request (headers and body) may take")
	fs.DurationVar(&in.HTTPWriteTimeout, "http-write-timeout", 30*time.Second, "HTTP server: the longest from the end of reading a request to the end of its answer")
	fs.DurationVar(&in.HTTPIdleTimeout, "http-idle-timeout", 2*time.Minute, "HTTP and debug servers: how long an idle keep-alive connection stays open")
	fs.DurationVar(&in.DebugWriteTimeout, "debug-write-timeout", 2*time.Minute, "debug server: the longest answer may take (a CPU profile asks for 30 s by default)")
}

// validate reports every invalid input bound.
func (in Input) validate() []error {
	var errs []error
	if in.ConfigMaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("settings: --config-max-bytes must be positive, got %d", in.ConfigMaxBytes))
	}
	if in.GRPCMaxConcurrentStreams == 0 || in.GRPCMaxConcurrentStreams > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("settings: --grpc-max-concurrent-streams must be from 1 to %d, got %d", uint32(math.MaxUint32), in.GRPCMaxConcurrentStreams))
	}
	if in.GRPCRecvTimeout < 0 {
		errs = append(errs, fmt.Errorf("settings: --grpc-recv-timeout must not be negative, got %s", in.GRPCRecvTimeout))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"http-read-timeout", in.HTTPReadTimeout}, {"http-write-timeout", in.HTTPWriteTimeout}, {"http-idle-timeout", in.HTTPIdleTimeout}, {"debug-write-timeout", in.DebugWriteTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("settings: --%s must be positive, got %s", d.name, d.v))
		}
	}
	return errs
}
