package testenv

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"maunium.net/go/mautrix"

	"github.com/carebridge/carebridge/internal/synapse"
)

// TestSynapseNioE2EE: the harness's E2EE proof (TestDendriteNioE2EE) on Synapse.
func TestSynapseNioE2EE(t *testing.T) {
	RequireDep(t, DepNio, NioAvailable())
	runNioE2EE(t, NewSynapse(t))
}

// TestSynapseRestartKeepsAccounts: users, their tokens and rooms survive a restart; a
// taken localpart is reported as such; the server speaks the spec versions bridgev2 wants.
// On SQLite and on PostgreSQL (where Synapse's data is in its database, not its folder).
func TestSynapseRestartKeepsAccounts(t *testing.T) {
	for _, db := range DatabaseKinds {
		t.Run(db, func(t *testing.T) { runSynapseRestartKeepsAccounts(t, db) })
	}
}

func runSynapseRestartKeepsAccounts(t *testing.T, dbKind string) {
	hs := NewSynapseOn(t, dbKind)
	started := time.Now()
	hs.Start()
	t.Logf("Synapse ready in %s", time.Since(started).Round(time.Millisecond))
	require.Equal(t, "@nurse:localhost", hs.CreateUser(t, "nurse", "correct-horse-battery"))
	_, err := hs.srv.CreateUser("nurse", "another-password")
	require.ErrorIs(t, err, synapse.ErrUserExists)

	client := hs.Login(t, "nurse", "correct-horse-battery")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	versions, err := client.Versions(ctx)
	require.NoError(t, err)
	assert.True(t, versions.ContainsGreaterOrEqual(mautrix.SpecV14), "Synapse speaks spec v1.4 or later: %v", versions.Versions)
	room, err := client.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
	require.NoError(t, err)

	hs.Stop()
	require.False(t, hs.Running())
	started = time.Now()
	hs.Restart()
	t.Logf("Synapse restarted in %s", time.Since(started).Round(time.Millisecond))
	joined, err := client.JoinedRooms(ctx)
	require.NoError(t, err, "the access token survives the restart")
	assert.Contains(t, joined.JoinedRooms, room.RoomID)

	_, err = os.Stat(filepath.Join(hs.Dir(), "homeserver.db"))
	if dbKind == "sqlite" {
		require.NoError(t, err)
		return
	}
	require.ErrorIs(t, err, os.ErrNotExist, "no SQLite database beside PostgreSQL")
	db, err := sql.Open("postgres", hs.srv.PostgresURI)
	require.NoError(t, err)
	defer db.Close()
	var users int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE name = $1", "@nurse:localhost").Scan(&users))
	assert.Equal(t, 1, users, "the account is in Synapse's PostgreSQL database")
}
