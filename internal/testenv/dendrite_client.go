package testenv

import (
	"testing"

	"maunium.net/go/mautrix"
)

// Login signs localpart in with a new device and returns a plain (unencrypted) mautrix
// client for it, for tests that drive rooms directly: create, invite, join, set state,
// read /sync. Use StartStaffAgent for an E2EE client.
func (d *Dendrite) Login(t testing.TB, localpart, password string) *mautrix.Client {
	t.Helper()
	return login(t, d.URL(), d.ServerName(), localpart, password)
}
