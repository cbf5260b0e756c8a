package testenv

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// Login signs localpart in with a new device and returns a plain (unencrypted) mautrix
// client for it, for tests that drive rooms directly: create, invite, join, set state,
// read /sync. Use StartStaffAgent for an E2EE client.
func (d *Dendrite) Login(t testing.TB, localpart, password string) *mautrix.Client {
	t.Helper()
	client, err := mautrix.NewClient(d.URL(), "", "")
	if err != nil {
		t.Fatalf("failed to create Matrix client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: "carebridge test",
		StoreCredentials:         true,
	})
	if err != nil {
		t.Fatalf("failed to log in as %s on %s: %v", localpart, d.ServerName(), err)
	}
	return client
}
