package settings

import (
	"io"
	"strings"
	"testing"
)

func TestXDSHeadersAndNodeMetadata(t *testing.T) {
	x := XDS{Headers: " X-Tenant = blue ,, authorization=Bearer a=b ", NodeMetadata: `{"zone": "a", "n": 2}`}
	h, err := x.HeaderMap()
	if err != nil || len(h) != 2 || h["x-tenant"] != "blue" || h["authorization"] != "Bearer a=b" {
		t.Errorf("HeaderMap = %v, %v", h, err)
	}
	md, err := x.NodeMetadataMap()
	if err != nil || md["zone"] != "a" || md["n"] != 2.0 {
		t.Errorf("NodeMetadataMap = %v, %v", md, err)
	}
	if md, err := (XDS{}).NodeMetadataMap(); md != nil || err != nil {
		t.Errorf("empty NodeMetadataMap = %v, %v", md, err)
	}
	if h, err := (XDS{}).HeaderMap(); len(h) != 0 || err != nil {
		t.Errorf("empty HeaderMap = %v, %v", h, err)
	}
}

// TestXDSValidate reports every bad xds setting at once.
func TestXDSValidate(t *testing.T) {
	_, err := ParseServe([]string{"--config-source", "xds", "--xds-headers", "novalue", "--xds-node-metadata", "[1]",
		"--xds-tls-cert", "c"}, func(string) string { return "" }, io.Discard)
	for _, want := range []string{"needs --xds-server", `--xds-headers: "novalue" is not key=value`,
		"--xds-node-metadata: want a JSON object", "--xds-tls-cert and --xds-tls-key go together"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
