package database_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestMetricsQueries(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)

		state, err := db.InboundQueueState(ctx)
		require.NoError(t, err)
		assert.Equal(t, database.QueueState{}, state, "an empty queue has no oldest text")

		for i, sid := range []string{"SM01", "SM02", "SM03"} {
			_, err = db.Receipt.Insert(ctx, &database.Receipt{MessageSID: sid, LoginID: testLogin, PatientPhone: "+15551234567",
				Params: url.Values{"Body": {"Hello"}}, ReceivedAt: now.Add(time.Duration(i-3) * time.Minute)})
			require.NoError(t, err)
		}
		require.NoError(t, db.Receipt.MarkDelivered(ctx, "SM01", now))
		state, err = db.InboundQueueState(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), state.Pending)
		assert.Equal(t, now.Add(-2*time.Minute), state.OldestReceived, "the oldest pending, not the delivered one")

		session := func(hash string, created time.Time, lifetime time.Duration) {
			require.NoError(t, db.Session.Insert(ctx, &database.SecureSession{SessionHash: hash, LinkHash: "link",
				LoginID: testLogin, PortalID: testPortal, CreatedAt: created, ExpiresAt: created.Add(lifetime)}))
		}
		session("open", now.Add(-time.Minute), 12*time.Hour)
		session("idle", now.Add(-20*time.Minute), 12*time.Hour)
		session("expired", now.Add(-13*time.Hour), 12*time.Hour)
		session("signed-out", now.Add(-time.Minute), 12*time.Hour)
		require.NoError(t, db.Session.End(ctx, "signed-out", now))
		n, err := db.ActiveSessions(ctx, now, 15*time.Minute)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
	})
}
