package localserver

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
	"strconv"
	"time"
)

// The certificate and key of a federation listener, in the server's folder (relative to
// it: Dendrite is started there and its flags name them so).
const (
	FederationCertFile = "federation_tls.crt"
	FederationKeyFile  = "federation_tls.key"
)

// FederationURL is the base of the server-server API on addr, https://addr, or "" when
// addr is "" (federation off).
func FederationURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "https://" + addr
}

// WriteFederationCert writes into dir the self-signed certificate and key of a
// federation listener on addr (HOST:PORT), unless they are there, and returns addr's
// host and port.
func WriteFederationCert(dir, addr string) (host string, port int, err error) {
	host, portText, err := net.SplitHostPort(addr)
	if err == nil {
		port, err = strconv.Atoi(portText)
	}
	if err != nil {
		return "", 0, fmt.Errorf("bad federation address %q: %w", addr, err)
	}
	err = WriteSelfSignedCert(filepath.Join(dir, FederationCertFile), filepath.Join(dir, FederationKeyFile), host)
	return host, port, err
}

// WriteSelfSignedCert writes a P-256 certificate for host (an IP literal or a name)
// unless one is already there, so that a restarted server keeps its certificate.
// Generated in-process: generate-keys makes 4096-bit RSA keys, which take seconds.
func WriteSelfSignedCert(certPath, keyPath, host string) error {
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

// InsecureTransport accepts the self-signed certificate of the server's own federation
// listener (on loopback, and only to see that it answers).
func InsecureTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	t.DisableKeepAlives = true
	return t
}
