package testenv

import (
	"net"
	"strconv"
	"testing"
)

// FederationOptions places a federating homeserver on loopback.
type FederationOptions struct {
	// Host is the IPv4 loopback address the federation listener binds and the host of
	// the server name: "127.0.0.1", "127.0.0.2", "127.0.0.3"… (default "127.0.0.1").
	// Give each server its own: m.room.server_acl matches hosts, not ports. (Host
	// names would need /etc/hosts entries; IP literals need no resolution at all.)
	Host string
}

// NewFederatedDendrite prepares a homeserver that federates with the other federated
// homeservers of the test over HTTPS (self-signed certificates, validation off). Its
// server name is HOST:PORT, an IP literal with the port of its federation listener, so
// other servers contact it directly (no well-known, no SRV, no DNS); user IDs look like
// @nurse:127.0.0.2:34567. The client API stays on http://127.0.0.1:PORT (URL). Use it
// as NewDendrite's: Start, CreateUser, Stop and Restart work the same.
func NewFederatedDendrite(t testing.TB, opts FederationOptions) *Dendrite {
	t.Helper()
	d := NewDendrite(t)
	d.srv.FederationAddr = opts.addr(t)
	d.srv.ServerName = d.srv.FederationAddr
	return d
}

// addr reserves the federation listener's HOST:PORT, which is also the server name.
func (opts FederationOptions) addr(t testing.TB) string {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	port, err := freePortOn(opts.Host) // never the client API's: no port is handed out twice
	RequireDep(t, DepLoopbackAlias, err)
	return net.JoinHostPort(opts.Host, strconv.Itoa(port))
}

// FederationURL is the server-server API base, https://HOST:PORT, or "" when the
// homeserver does not federate.
func (d *Dendrite) FederationURL() string { return d.srv.FederationURL() }

// Host is the server name without its port: what m.room.server_acl entries match.
func (d *Dendrite) Host() string { return serverHost(d.srv.ServerName) }

// serverHost is a server name without its port.
func serverHost(serverName string) string {
	if host, _, err := net.SplitHostPort(serverName); err == nil {
		return host
	}
	return serverName
}
