package app

import (
	"fmt"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/envoy-rls/envoy-rls/internal/settings"
	"github.com/envoy-rls/envoy-rls/internal/source/xds"
)

// newXDSSource builds the xDS config source from the settings.
func newXDSSource(s settings.Serve, log *zap.Logger) (*xds.Source, error) {
	headers, err := s.XDS.HeaderMap()
	if err != nil {
		return nil, err
	}
	md, err := s.XDS.NodeMetadataMap()
	if err != nil {
		return nil, err
	}
	var node *structpb.Struct
	if md != nil {
		if node, err = structpb.NewStruct(md); err != nil {
			return nil, fmt.Errorf("app: --xds-node-metadata: %w", err)
		}
	}
	opts := xds.Options{
		Server:         s.XDS.Server,
		NodeID:         s.XDS.NodeID,
		NodeMetadata:   node,
		Headers:        headers,
		BackoffInitial: s.XDS.BackoffInitial,
		BackoffMax:     s.XDS.BackoffMax,
		Logger:         log,
		Check:          checkConfig(s.Store),
	}
	if s.XDS.TLS || s.XDS.TLSCA != "" || s.XDS.TLSCert != "" || s.XDS.TLSServerName != "" {
		opts.TLS = &xds.TLSFiles{CAFile: s.XDS.TLSCA, CertFile: s.XDS.TLSCert, KeyFile: s.XDS.TLSKey, ServerName: s.XDS.TLSServerName}
	}
	src, err := xds.New(opts)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return src, nil
}
