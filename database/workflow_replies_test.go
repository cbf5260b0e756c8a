package database_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// TestClaimAfterHours: one after-hours reply per closed period, a new period allows one
// more, concurrent claims have one winner, and a released claim can be taken again.
func TestClaimAfterHours(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		_, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: testLogin, PortalID: testPortal,
			ClinicPhone: "+15550001111", PatientPhone: "+15551234567"})
		require.NoError(t, err)
		// Friday 17:00 New York closed the clinic; the patient texts at 21:30 and 21:45.
		closed := time.Date(2026, 3, 6, 22, 0, 0, 0, time.UTC)
		first := closed.Add(4*time.Hour + 30*time.Minute)

		ok, err := db.Conversation.ClaimAfterHours(ctx, testLogin, testPortal, first, closed)
		require.NoError(t, err)
		assert.True(t, ok, "the first text of the closed period gets the reply")
		ok, err = db.Conversation.ClaimAfterHours(ctx, testLogin, testPortal, first.Add(15*time.Minute), closed)
		require.NoError(t, err)
		assert.False(t, ok, "a second text in the same period does not")
		conv, err := db.Conversation.Get(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.WithinDuration(t, first, conv.AfterHoursAt, 0)

		// The reply could not be texted: released, the next text tries again.
		require.NoError(t, db.Conversation.ReleaseAfterHours(ctx, testLogin, testPortal, first, time.Time{}))
		conv, err = db.Conversation.Get(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.True(t, conv.AfterHoursAt.IsZero())
		retry := first.Add(20 * time.Minute)
		ok, err = db.Conversation.ClaimAfterHours(ctx, testLogin, testPortal, retry, closed)
		require.NoError(t, err)
		assert.True(t, ok)
		// A stale release (of an older claim) does not undo the newer one.
		require.NoError(t, db.Conversation.ReleaseAfterHours(ctx, testLogin, testPortal, first, time.Time{}))
		conv, err = db.Conversation.Get(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.WithinDuration(t, retry, conv.AfterHoursAt, 0)

		// Monday 17:00 starts the next closed period: eight texts at once, one reply.
		nextClosed := time.Date(2026, 3, 9, 21, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := db.Conversation.ClaimAfterHours(ctx, testLogin, testPortal, nextClosed.Add(time.Duration(i+1)*time.Minute), nextClosed)
				assert.NoError(t, err)
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, wins, "concurrent claims in one period: one winner")
	})
}
