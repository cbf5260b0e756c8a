package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// TestOutboxDueHeadsComeWithoutTheirBodyAndTheClaimReadsIt: the due read leaves the sealed
// body out (most heads it returns are not taken); claiming one reads it, with the attempt
// counted, and a text claimed already is not claimed again.
func TestOutboxDueHeadsComeWithoutTheirBodyAndTheClaimReadsIt(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		for i, body := range []string{"first", "second"} {
			_, err := db.Outbox.Insert(ctx, &database.OutboxMessage{LoginID: "15550001111", PortalID: "15551234567",
				Kind: "staff_reply", From: "+15550001111", To: "+15551234567", KeyID: "k1", Sealed: []byte(body),
				EventID: "$evt" + body, SenderMXID: "@nurse:clinic.example", CreatedAt: now.Add(time.Duration(i) * time.Millisecond)})
			require.NoError(t, err)
		}
		due, err := db.Outbox.GetDue(ctx, now.Add(time.Second), 10)
		require.NoError(t, err)
		require.Len(t, due, 1, "only the conversation's oldest text is due")
		head := due[0]
		assert.Equal(t, "$evtfirst", head.EventID)
		assert.Equal(t, "+15551234567", head.To)
		assert.Nil(t, head.Sealed, "the body is not read with the due heads")
		assert.Empty(t, head.KeyID)
		assert.Zero(t, head.Attempts)

		claimed, err := db.Outbox.Claim(ctx, head, now)
		require.NoError(t, err)
		require.True(t, claimed)
		assert.Equal(t, []byte("first"), head.Sealed)
		assert.Equal(t, "k1", head.KeyID)
		assert.Equal(t, 1, head.Attempts, "the attempt is counted")
		assert.Equal(t, database.OutboxSending, head.State)

		again := &database.OutboxMessage{ID: head.ID}
		claimed, err = db.Outbox.Claim(ctx, again, now)
		require.NoError(t, err)
		assert.False(t, claimed, "a text being sent is not claimed twice")
		assert.Nil(t, again.Sealed)

		require.NoError(t, db.Outbox.MarkRetry(ctx, head.ID, now, 20003, "try again", now))
		due, err = db.Outbox.GetDue(ctx, now.Add(time.Second), 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		claimed, err = db.Outbox.Claim(ctx, due[0], now)
		require.NoError(t, err)
		require.True(t, claimed)
		assert.Equal(t, 2, due[0].Attempts, "attempts so far, this one included")
		assert.Equal(t, []byte("first"), due[0].Sealed)
	})
}
