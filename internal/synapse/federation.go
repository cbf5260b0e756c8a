package synapse

import (
	"path/filepath"

	"github.com/carebridge/carebridge/internal/localserver"
)

// FederationURL is the base of the server-server API, https://FederationAddr, or ""
// when federation is off.
func (s *Server) FederationURL() string { return localserver.FederationURL(s.FederationAddr) }

// configureFederation opens the server to other test servers on loopback, as
// internal/dendrite's does: a second listener, HTTPS with a self-signed certificate,
// serving the federation and key APIs on FederationAddr; certificates of other servers
// not verified (federation_verify_certificates: false; each is self-signed); keys
// fetched from the servers themselves (trusted_key_servers stays empty); and loopback
// allowed as a destination. Synapse refuses private addresses by default
// (ip_range_blacklist), and ip_range_whitelist does not help for a server name that is
// an IP literal (BlocklistingAgentWrapper checks the blocklist alone: "Blocking access
// to 127.0.0.2", "403: IP address blocked"), so federation gets its own, empty list
// (federation_ip_range_blacklist; 0.0.0.0 and :: stay blocked).
func (s *Server) configureFederation(cfg map[string]any) error {
	host, port, err := localserver.WriteFederationCert(s.Dir, s.FederationAddr)
	if err != nil {
		return err
	}
	cfg["listeners"] = append(cfg["listeners"].([]any), map[string]any{
		"port": port, "bind_addresses": []string{host}, "type": "http", "tls": true, "x_forwarded": false,
		"resources": []any{map[string]any{"names": []string{"federation"}, "compress": false}},
	})
	cfg["tls_certificate_path"] = filepath.Join(s.Dir, localserver.FederationCertFile)
	cfg["tls_private_key_path"] = filepath.Join(s.Dir, localserver.FederationKeyFile)
	cfg["federation_verify_certificates"] = false
	cfg["federation_ip_range_blacklist"] = []string{}
	delete(cfg, "federation_domain_whitelist")
	return nil
}
