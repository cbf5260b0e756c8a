package database_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestScheduledMessageLifecycle(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		sq := db.Scheduled()
		now := time.UnixMilli(time.Now().UnixMilli())
		_, ok, err := sq.NextDue(ctx)
		require.NoError(t, err)
		assert.False(t, ok, "nothing pending yet")

		insert := func(portalID string, in time.Duration) *database.ScheduledMessage {
			m := &database.ScheduledMessage{LoginID: "15550001111", PortalID: portalID, CreatedBy: "@nurse:clinic.example",
				CreatedAt: now, SendAt: now.Add(in), KeyID: "k1", Body: []byte{0x01, 0x02, 0x03}}
			require.NoError(t, sq.Insert(ctx, m))
			require.NotZero(t, m.ID)
			return m
		}
		later := insert("15551234567", 72*time.Hour)
		soon := insert("15551234567", 2*time.Hour)
		other := insert("15557654321", time.Hour)

		next, ok, err := sq.NextDue(ctx)
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, other.SendAt, next)

		pending, err := sq.ListPending(ctx, "15550001111", "15551234567")
		require.NoError(t, err)
		require.Len(t, pending, 2)
		assert.Equal(t, []int64{soon.ID, later.ID}, []int64{pending[0].ID, pending[1].ID}, "the soonest first")
		assert.Equal(t, soon, pending[0])

		due, err := sq.GetDue(ctx, now.Add(90*time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		assert.Equal(t, other.ID, due[0].ID)
		due, err = sq.GetDue(ctx, now.Add(3*time.Hour), 10)
		require.NoError(t, err)
		require.Len(t, due, 2)
		assert.Equal(t, other.ID, due[0].ID, "the oldest due first")

		// Claim is a compare-and-set: the second claim loses.
		claimed, err := sq.Claim(ctx, other.ID)
		require.NoError(t, err)
		assert.True(t, claimed)
		claimed, err = sq.Claim(ctx, other.ID)
		require.NoError(t, err)
		assert.False(t, claimed)
		sending, err := sq.ListSending(ctx)
		require.NoError(t, err)
		require.Len(t, sending, 1)
		assert.Equal(t, other.ID, sending[0].ID)
		cancelled, err := sq.Cancel(ctx, other.ID, "15550001111", "15557654321")
		require.NoError(t, err)
		assert.False(t, cancelled, "a message being sent cannot be cancelled")

		finished, err := sq.Finish(ctx, other.ID, database.ScheduledSent, now.Add(time.Hour), "")
		require.NoError(t, err)
		assert.True(t, finished)
		finished, err = sq.Finish(ctx, other.ID, database.ScheduledFailed, now.Add(time.Hour), "late")
		require.NoError(t, err)
		assert.False(t, finished, "the outcome is recorded once")
		got, err := sq.Get(ctx, other.ID)
		require.NoError(t, err)
		assert.Equal(t, database.ScheduledSent, got.State)
		assert.Equal(t, now.Add(time.Hour), got.SentAt)
		assert.Empty(t, got.Body, "the sealed text is dropped once sent")
		assert.Empty(t, got.KeyID)

		// Cancel only works in the message's own conversation, and once.
		cancelled, err = sq.Cancel(ctx, soon.ID, "15550001111", "15557654321")
		require.NoError(t, err)
		assert.False(t, cancelled)
		cancelled, err = sq.Cancel(ctx, soon.ID, "15550001111", "15551234567")
		require.NoError(t, err)
		assert.True(t, cancelled)
		cancelled, err = sq.Cancel(ctx, soon.ID, "15550001111", "15551234567")
		require.NoError(t, err)
		assert.False(t, cancelled)
		claimed, err = sq.Claim(ctx, soon.ID)
		require.NoError(t, err)
		assert.False(t, claimed, "a cancelled message is never sent")
		got, err = sq.Get(ctx, soon.ID)
		require.NoError(t, err)
		assert.Equal(t, database.ScheduledCancelled, got.State)
		assert.Empty(t, got.Body)

		// A failure keeps its reason.
		claimed, err = sq.Claim(ctx, later.ID)
		require.NoError(t, err)
		require.True(t, claimed)
		finished, err = sq.Finish(ctx, later.ID, database.ScheduledFailed, now, "opted out")
		require.NoError(t, err)
		assert.True(t, finished)
		got, err = sq.Get(ctx, later.ID)
		require.NoError(t, err)
		assert.Equal(t, database.ScheduledFailed, got.State)
		assert.Equal(t, "opted out", got.Error)
		assert.True(t, got.SentAt.IsZero())

		_, ok, err = sq.NextDue(ctx)
		require.NoError(t, err)
		assert.False(t, ok, "nothing pending any more")
		missing, err := sq.Get(ctx, 999999)
		require.NoError(t, err)
		assert.Nil(t, missing)
	})
}

// TestScheduledClaimIsExclusive: of many concurrent claims of one message, exactly one wins.
func TestScheduledClaimIsExclusive(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		m := &database.ScheduledMessage{LoginID: "15550001111", PortalID: "15551234567", CreatedBy: "@nurse:clinic.example",
			CreatedAt: time.Now(), SendAt: time.Now(), KeyID: "k1", Body: []byte("sealed")}
		require.NoError(t, db.Scheduled().Insert(ctx, m))
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := db.Scheduled().Claim(ctx, m.ID)
				assert.NoError(t, err)
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load())
	})
}
