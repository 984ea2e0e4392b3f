package settings

import (
	"encoding/json"
	"fmt"
	"strings"
)

// HeaderMap parses Headers ("k=v,k2=v2") into gRPC metadata keys and
// values. Keys are lower-cased, as gRPC metadata keys are.
func (x XDS) HeaderMap() (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(x.Headers, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf("settings: --xds-headers: %q is not key=value", item)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// NodeMetadataMap parses NodeMetadata, a JSON object; "" gives nil.
func (x XDS) NodeMetadataMap() (map[string]any, error) {
	if strings.TrimSpace(x.NodeMetadata) == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(x.NodeMetadata), &m); err != nil {
		return nil, fmt.Errorf("settings: --xds-node-metadata: want a JSON object: %w", err)
	}
	return m, nil
}
