package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestAPIConversationHandle(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.Integration()
		first, err := q.EnsureConversation(ctx, "15550001111", "15551234567", "conv_a")
		require.NoError(t, err)
		again, err := q.EnsureConversation(ctx, "15550001111", "15551234567", "conv_b")
		require.NoError(t, err)
		assert.Equal(t, "conv_a", first.ID)
		assert.Equal(t, "conv_a", again.ID, "a conversation keeps its first API ID")
		require.NoError(t, q.SetExternalID(ctx, "conv_a", "MRN-1001"))
		byExt, err := q.ConversationsByExternalID(ctx, "MRN-1001")
		require.NoError(t, err)
		require.Len(t, byExt, 1)
		assert.Equal(t, "15551234567", byExt[0].PortalID)
		none, err := q.ConversationsByExternalID(ctx, "")
		require.NoError(t, err)
		assert.Empty(t, none, "an empty patient ID names nobody")
		_, err = q.EnsureConversation(ctx, "15550001111", "15557654321", "conv_c")
		require.NoError(t, err)
		none, err = q.ConversationsByExternalID(ctx, "")
		require.NoError(t, err)
		assert.Empty(t, none, "conversations without a patient ID are not found by an empty one")
		missing, err := q.Conversation(ctx, "conv_nope")
		require.NoError(t, err)
		assert.Nil(t, missing)
	})
}

func TestIdempotencyClaims(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.Integration()
		claimed, prior, err := q.ClaimIdempotency(ctx, "ehr", "k1", "hash-a")
		require.NoError(t, err)
		assert.True(t, claimed)
		assert.Nil(t, prior)
		// A second request while the first runs sees it unfinished.
		claimed, prior, err = q.ClaimIdempotency(ctx, "ehr", "k1", "hash-a")
		require.NoError(t, err)
		assert.False(t, claimed)
		require.NotNil(t, prior)
		assert.Zero(t, prior.Status)
		// Another integration's key of the same name is its own.
		claimed, _, err = q.ClaimIdempotency(ctx, "pms", "k1", "hash-a")
		require.NoError(t, err)
		assert.True(t, claimed)
		// Only the claim that was read can be taken over.
		stale := *prior
		stale.CreatedAt = stale.CreatedAt.Add(-time.Hour)
		ok, err := q.RetakeIdempotency(ctx, "ehr", "k1", "hash-a", &stale)
		require.NoError(t, err)
		assert.False(t, ok)
		ok, err = q.RetakeIdempotency(ctx, "ehr", "k1", "hash-a", prior)
		require.NoError(t, err)
		assert.True(t, ok)
		require.NoError(t, q.FinishIdempotency(ctx, "ehr", "k1", 201, "k", []byte("sealed")))
		_, prior, err = q.ClaimIdempotency(ctx, "ehr", "k1", "hash-b")
		require.NoError(t, err)
		assert.Equal(t, "hash-a", prior.RequestHash)
		assert.Equal(t, 201, prior.Status)
		assert.Equal(t, []byte("sealed"), prior.Response)
		// A finished key is not released; an unfinished one is.
		require.NoError(t, q.ReleaseIdempotency(ctx, "ehr", "k1"))
		_, prior, err = q.ClaimIdempotency(ctx, "ehr", "k1", "hash-a")
		require.NoError(t, err)
		require.NotNil(t, prior)
		require.NoError(t, q.ReleaseIdempotency(ctx, "pms", "k1"))
		claimed, _, err = q.ClaimIdempotency(ctx, "pms", "k1", "hash-c")
		require.NoError(t, err)
		assert.True(t, claimed)
	})
}

func TestAPIMessagesRead(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.Integration()
		for i, secureID := range []int64{10, 20, 30} {
			require.NoError(t, q.InsertMessage(ctx, &database.APIMessage{ID: []string{"msg_a", "msg_b", "msg_c"}[i], Integration: "ehr",
				ConversationID: "conv_a", LoginID: "15550001111", PortalID: "15551234567", Via: database.ModeSecure, SecureID: secureID,
				CreatedAt: time.UnixMilli(int64(1000 + i))}))
		}
		require.NoError(t, q.InsertMessage(ctx, &database.APIMessage{ID: "msg_sms", Integration: "ehr", ConversationID: "conv_a",
			LoginID: "15550001111", PortalID: "15551234567", Via: database.ModeSMS, MessageSID: "SM1"}))
		at := time.UnixMilli(5000)
		read, err := q.MarkRead(ctx, "15550001111", "15551234567", 20, at)
		require.NoError(t, err)
		require.Len(t, read, 2)
		assert.Equal(t, []string{"msg_a", "msg_b"}, []string{read[0].ID, read[1].ID})
		again, err := q.MarkRead(ctx, "15550001111", "15551234567", 20, at.Add(time.Second))
		require.NoError(t, err)
		assert.Empty(t, again, "read once")
		m, err := q.Message(ctx, "msg_a")
		require.NoError(t, err)
		assert.Equal(t, at, m.ReadAt)
		m, err = q.Message(ctx, "msg_c")
		require.NoError(t, err)
		assert.True(t, m.ReadAt.IsZero())
	})
}

func TestAPIEventsInOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.Integration()
		for _, id := range []string{"evt_3", "evt_1", "evt_2"} {
			require.NoError(t, q.InsertEvent(ctx, &database.APIEvent{EventID: id, Integration: "ehr", Type: "patient.replied",
				KeyID: "k1", Payload: []byte(id)}))
		}
		require.NoError(t, q.InsertEvent(ctx, &database.APIEvent{EventID: "evt_other", Integration: "pms", Type: "x", KeyID: "k1", Payload: []byte("x")}))
		next, err := q.NextEvent(ctx, "ehr")
		require.NoError(t, err)
		assert.Equal(t, "evt_3", next.EventID, "queued order, not ID order")
		// A failed delivery keeps the event first.
		retry := time.Now().Add(time.Minute).Truncate(time.Millisecond)
		require.NoError(t, q.EventFailed(ctx, next.ID, retry, "the receiver answered 503"))
		next, err = q.NextEvent(ctx, "ehr")
		require.NoError(t, err)
		assert.Equal(t, "evt_3", next.EventID)
		assert.Equal(t, 1, next.Attempts)
		assert.Equal(t, retry, next.NextAttemptAt)
		require.NoError(t, q.EventDelivered(ctx, next.ID, time.Now()))
		next, err = q.NextEvent(ctx, "ehr")
		require.NoError(t, err)
		assert.Equal(t, "evt_1", next.EventID)
		n, err := q.PendingEvents(ctx, "ehr")
		require.NoError(t, err)
		assert.Equal(t, 2, n)
	})
}
