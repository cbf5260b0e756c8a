package dendrite

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
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
	if err := writeSelfSignedCert(filepath.Join(s.Dir, tlsCertFile), filepath.Join(s.Dir, tlsKeyFile), host); err != nil {
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

// writeSelfSignedCert writes a P-256 certificate for host (an IP literal or a name)
// unless one is already there, so that a restarted server keeps its certificate.
// Generated in-process: generate-keys makes 4096-bit RSA keys, which take seconds.
func writeSelfSignedCert(certPath, keyPath, host string) error {
	if _, err := os.Stat(certPath); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to check TLS certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("failed to generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return fmt.Errorf("failed to generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("failed to create TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("failed to encode TLS key: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("failed to write TLS key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("failed to write TLS certificate: %w", err)
	}
	return nil
}

// insecureTransport accepts the self-signed certificate of the server's own listener
// (on loopback, and only to see that it answers).
func insecureTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	t.DisableKeepAlives = true
	return t
}
