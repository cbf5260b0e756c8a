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

func TestTwilioSyncMarkOnlyMovesForward(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		_, ok, err := db.TwilioSync.SyncedUntil(ctx, "15550001111")
		require.NoError(t, err)
		assert.False(t, ok, "a number never read has no mark")

		linked := time.UnixMilli(1_700_000_000_000)
		require.NoError(t, db.TwilioSync.Init(ctx, "15550001111", linked))
		require.NoError(t, db.TwilioSync.Init(ctx, "15550001111", linked.Add(time.Hour)), "linking again keeps the mark")
		until, ok, err := db.TwilioSync.SyncedUntil(ctx, "15550001111")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, linked, until)

		require.NoError(t, db.TwilioSync.Advance(ctx, "15550001111", linked.Add(10*time.Minute)))
		require.NoError(t, db.TwilioSync.Advance(ctx, "15550001111", linked.Add(5*time.Minute)), "an older run cannot take it back")
		until, _, err = db.TwilioSync.SyncedUntil(ctx, "15550001111")
		require.NoError(t, err)
		assert.Equal(t, linked.Add(10*time.Minute), until)

		require.NoError(t, db.TwilioSync.Advance(ctx, "15550002222", linked), "a number without a mark gets one")
		until, ok, err = db.TwilioSync.SyncedUntil(ctx, "15550002222")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, linked, until)
	})
}

func TestLastReceivedAtIsPerNumber(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		last, err := db.Receipt.LastReceivedAt(ctx, "15550001111")
		require.NoError(t, err)
		assert.True(t, last.IsZero())
		base := time.UnixMilli(1_700_000_000_000)
		for i, r := range []struct{ sid, login string }{
			{"SM00000000000000000000000000000001", "15550001111"},
			{"SM00000000000000000000000000000002", "15550001111"},
			{"SM00000000000000000000000000000003", "15550002222"},
		} {
			_, err = db.Receipt.Insert(ctx, &database.Receipt{MessageSID: r.sid, LoginID: r.login, PatientPhone: "+15551234567",
				Params: url.Values{"Body": {"Hello"}}, ReceivedAt: base.Add(time.Duration(i) * time.Second)})
			require.NoError(t, err)
		}
		last, err = db.Receipt.LastReceivedAt(ctx, "15550001111")
		require.NoError(t, err)
		assert.Equal(t, base.Add(time.Second), last)
	})
}

func TestUnfinishedOutboundAreThoseStillOwedAStatus(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		base := time.UnixMilli(1_700_000_000_000)
		for i, o := range []struct{ sid, login, status string }{
			{"SM00000000000000000000000000000011", "15550001111", "sent"},
			{"SM00000000000000000000000000000012", "15550001111", "delivered"},
			{"SM00000000000000000000000000000013", "15550001111", "queued"},
			{"SM00000000000000000000000000000014", "15550001111", "undelivered"},
			{"SM00000000000000000000000000000015", "15550002222", "queued"},
			{"SM00000000000000000000000000000016", "15550001111", "accepted"},
		} {
			require.NoError(t, db.Outbound.Insert(ctx, &database.Outbound{MessageSID: o.sid, LoginID: o.login, PortalID: "15551234567",
				Status: o.status, CreatedAt: base.Add(time.Duration(i) * time.Minute)}))
		}
		got, err := db.Outbound.Unfinished(ctx, "15550001111", base, base.Add(5*time.Minute), 10)
		require.NoError(t, err)
		var sids []string
		for _, o := range got {
			sids = append(sids, o.MessageSID)
		}
		assert.Equal(t, []string{"SM00000000000000000000000000000011", "SM00000000000000000000000000000013"}, sids,
			"not final, this number's, created in the window, oldest first")
		got, err = db.Outbound.Unfinished(ctx, "15550001111", base, base.Add(time.Hour), 1)
		require.NoError(t, err)
		assert.Len(t, got, 1, "at most limit")
	})
}
