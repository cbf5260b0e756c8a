package dendrite

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/carebridge/carebridge/internal/localserver"
)

// The certificate and key of the federation listener, in the server's folder. Dendrite
// is started from that folder, so the flags name them relatively.
const (
	tlsCertFile = "federation_tls.crt"
	tlsKeyFile  = "federation_tls.key"
)

// FederationURL is the base of the server-server API, https://FederationAddr, or ""
// when federation is off.
func (s *Server) FederationURL() string {
	if s.FederationAddr == "" {
		return ""
	}
	return "https://" + s.FederationAddr
}

// configureFederation opens the server to other test servers on loopback: federation on,
// TLS validation off (every server's certificate is self-signed), keys fetched from the
// servers themselves (no matrix.org notary), no identity servers.
func (s *Server) configureFederation(cfg map[string]any) error {
	host, _, err := net.SplitHostPort(s.FederationAddr)
	if err != nil {
		return fmt.Errorf("bad federation address %q: %w", s.FederationAddr, err)
	}
	if err := localserver.WriteSelfSignedCert(filepath.Join(s.Dir, tlsCertFile), filepath.Join(s.Dir, tlsKeyFile), host); err != nil {
		return err
	}
	settings := []struct {
		path  []string
		value any
	}{
		{[]string{"global", "trusted_third_party_id_servers"}, []any{}},
		{[]string{"federation_api", "disable_tls_validation"}, true},
		{[]string{"federation_api", "key_perspectives"}, []any{}},
		{[]string{"federation_api", "prefer_direct_fetch"}, true},
	}
	for _, set := range settings {
		if err := SetYAMLPath(cfg, set.path, set.value); err != nil {
			return err
		}
	}
	return nil
}
