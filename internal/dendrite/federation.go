package dendrite

import "github.com/carebridge/carebridge/internal/localserver"

// FederationURL is the base of the server-server API, https://FederationAddr, or ""
// when federation is off.
func (s *Server) FederationURL() string { return localserver.FederationURL(s.FederationAddr) }

// configureFederation opens the server to other test servers on loopback: federation on,
// TLS validation off (every server's certificate is self-signed), keys fetched from the
// servers themselves (no matrix.org notary), no identity servers.
func (s *Server) configureFederation(cfg map[string]any) error {
	if _, _, err := localserver.WriteFederationCert(s.Dir, s.FederationAddr); err != nil {
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
