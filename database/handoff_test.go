package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// A web replica asks for a code without making it: the request counts towards the
// limits at once, and the one pass that fills it in is the one that texts it.
func TestPendingCodeIsFilledOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		req := &database.SecureCode{LinkHash: "h1", PatientPhone: "+15551234567", CodeHash: database.NewPendingCode(),
			CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
		assert.True(t, database.IsPendingCode(req.CodeHash))
		twin := *req
		twin.CodeHash = database.NewPendingCode()
		stored, err := db.Code.InsertWithinLimit(ctx, &twin, now.Add(-time.Hour), 3)
		require.NoError(t, err)
		require.True(t, stored, "a second request in the same millisecond")
		stored, err = db.Code.InsertWithinLimit(ctx, req, now.Add(-time.Hour), 3)
		require.NoError(t, err)
		require.True(t, stored)
		old := &database.SecureCode{LinkHash: "h2", PatientPhone: "+15557654321", CodeHash: database.NewPendingCode(),
			CreatedAt: now.Add(-20 * time.Minute), ExpiresAt: now.Add(-10 * time.Minute)}
		require.NoError(t, db.Code.Insert(ctx, old))

		pending, err := db.Code.Pending(ctx, now, 10)
		require.NoError(t, err)
		require.Len(t, pending, 2, "an expired request is not texted")
		assert.Equal(t, "h1", pending[0].LinkHash)
		claim := *pending[0]
		filled, err := db.Code.Fill(ctx, pending[0], "c1")
		require.NoError(t, err)
		assert.True(t, filled)
		assert.Equal(t, "c1", pending[0].CodeHash)
		filled, err = db.Code.Fill(ctx, &claim, "c2")
		require.NoError(t, err)
		assert.False(t, filled, "a second pass finds it claimed")
		pending, err = db.Code.Pending(ctx, now, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1, "the other request of that millisecond is its own")
		filled, err = db.Code.Fill(ctx, pending[0], "c3")
		require.NoError(t, err)
		assert.True(t, filled)
		pending, err = db.Code.Pending(ctx, now, 10)
		require.NoError(t, err)
		assert.Empty(t, pending)

		req.CreatedAt, req.CodeHash = now.Add(time.Second), database.NewPendingCode()
		stored, err = db.Code.InsertWithinLimit(ctx, req, now.Add(-time.Hour), 2)
		require.NoError(t, err)
		assert.False(t, stored, "requests count towards the limit before they are texted")
	})
}

func TestReadPendingKeepsTheNewest(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		add := func(id int64, at time.Time) {
			require.NoError(t, db.ReadPending.Add(ctx, &database.SecureReadPending{LoginID: testLogin, PortalID: testPortal,
				MessageID: id, ReadAt: at}))
		}
		add(5, now)
		add(3, now.Add(time.Second))
		due, err := db.ReadPending.Due(ctx, 10)
		require.NoError(t, err)
		require.Len(t, due, 1, "one per conversation")
		assert.Equal(t, int64(5), due[0].MessageID, "an older reading does not replace a newer one")
		assert.Equal(t, now, due[0].ReadAt)
		add(7, now.Add(2*time.Second))
		require.NoError(t, db.ReadPending.Done(ctx, due[0]))
		due, err = db.ReadPending.Due(ctx, 10)
		require.NoError(t, err)
		require.Len(t, due, 1, "a reading that came in meanwhile stays")
		assert.Equal(t, int64(7), due[0].MessageID)
		require.NoError(t, db.ReadPending.Done(ctx, due[0]))
		due, err = db.ReadPending.Due(ctx, 10)
		require.NoError(t, err)
		assert.Empty(t, due)
	})
}

func TestSecureMessageEventID(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		msg := &database.SecureMessage{LoginID: testLogin, PortalID: testPortal, FromPatient: true, Kind: database.SecureText,
			KeyID: "k1", Body: []byte("sealed")}
		require.NoError(t, db.Secure.Insert(ctx, msg))
		id, err := db.Secure.EventID(ctx, msg.ID)
		require.NoError(t, err)
		assert.Empty(t, id)
		require.NoError(t, db.Secure.SetEventID(ctx, msg.ID, "$abc"))
		id, err = db.Secure.EventID(ctx, msg.ID)
		require.NoError(t, err)
		assert.Equal(t, "$abc", id)
		id, err = db.Secure.EventID(ctx, msg.ID+100)
		require.NoError(t, err)
		assert.Empty(t, id, "a message that is gone")
	})
}

// Signals reach other connections at commit, and SQLite (one process) refuses to listen.
func TestSignalsBetweenProcesses(t *testing.T) {
	spec := testenv.NewPostgres(t)
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	require.True(t, db.Shared())
	l, err := db.Listen(spec.URI, zerolog.Nop(), "carebridge_test")
	require.NoError(t, err)
	defer l.Close()
	require.Eventually(t, func() bool { return l.Ping() == nil }, 10*time.Second, 20*time.Millisecond, "listener connects")

	ctx := context.Background()
	err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
		require.NoError(t, db.Notify(ctx, "carebridge_test", "in a transaction"))
		select {
		case s := <-l.Signals():
			t.Errorf("signal %q before commit", s.Payload)
		case <-time.After(200 * time.Millisecond):
		}
		return nil
	})
	require.NoError(t, err)
	select {
	case s := <-l.Signals():
		assert.Equal(t, database.Signal{Channel: "carebridge_test", Payload: "in a transaction"}, s)
	case <-time.After(5 * time.Second):
		t.Fatal("no signal after commit")
	}

	lite := openDB(t, "sqlite")
	assert.False(t, lite.Shared())
	require.NoError(t, lite.Notify(ctx, "carebridge_test", "nobody"), "nothing to tell on SQLite")
	_, err = lite.Listen("", zerolog.Nop(), "carebridge_test")
	assert.ErrorIs(t, err, database.ErrNotShared)
}
