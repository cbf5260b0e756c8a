package testenv

import "testing"

// NewFederatedSynapse prepares a Synapse on SQLite that federates with the other
// federated homeservers of the test (Synapse or Dendrite) over HTTPS, as
// NewFederatedDendrite does: server name HOST:PORT of its federation listener, a
// self-signed certificate, certificates not verified (federation_verify_certificates:
// false), loopback allowed as a destination. The client API stays on
// http://127.0.0.1:PORT (URL).
func NewFederatedSynapse(t testing.TB, opts FederationOptions) *Synapse {
	t.Helper()
	s := NewSynapse(t)
	s.srv.FederationAddr = opts.addr(t)
	s.srv.ServerName = s.srv.FederationAddr
	return s
}

// FederationURL is the server-server API base, https://HOST:PORT, or "" when the
// homeserver does not federate.
func (s *Synapse) FederationURL() string { return s.srv.FederationURL() }

// Host is the server name without its port: what m.room.server_acl entries match.
func (s *Synapse) Host() string { return serverHost(s.srv.ServerName) }

// FederatedHomeserver is a homeserver that federates with the test's others on loopback
// (NewFederatedDendrite, NewFederatedSynapse).
type FederatedHomeserver interface {
	Homeserver
	// FederationURL is the server-server API base, https://HOST:PORT.
	FederationURL() string
	// Host is the server name without its port: what m.room.server_acl entries match.
	Host() string
}

var (
	_ FederatedHomeserver = (*Dendrite)(nil)
	_ FederatedHomeserver = (*Synapse)(nil)
)

// NewFederatedHomeserver prepares a federating homeserver of the given kind
// (HomeserverDendrite or HomeserverSynapse).
func NewFederatedHomeserver(t testing.TB, kind string, opts FederationOptions) FederatedHomeserver {
	t.Helper()
	switch kind {
	case HomeserverDendrite:
		return NewFederatedDendrite(t, opts)
	case HomeserverSynapse:
		return NewFederatedSynapse(t, opts)
	default:
		t.Fatalf("unknown homeserver %q", kind)
		return nil
	}
}
