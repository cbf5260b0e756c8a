package conversation_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
)

// The fake rooms are told of closing and reopening too.
func (r *rooms) Closed(context.Context, *database.Conversation, database.AuditActor) {
	r.record("closed")
}
func (r *rooms) Reopened(context.Context, *database.Conversation, database.AuditActor) {
	r.record("reopened")
}

var _ conversation.Lifecycle = (*rooms)(nil)

func TestCloseEndsTheWaitAndLeavesTheInbox(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		at := time.Date(2026, 3, 2, 15, 4, 0, 0, time.UTC)
		require.NoError(t, e.db.Conversation.MarkWaiting(ctx, e.conv.LoginID, e.conv.PortalID, at.Add(-time.Hour)))
		conv := e.stored(t, ctx)

		require.NoError(t, e.svc.Close(ctx, conv, nurse, "Nurse Joy", at))
		stored := e.stored(t, ctx)
		assert.Equal(t, at.UnixMilli(), stored.ClosedAt.UnixMilli())
		assert.True(t, stored.WaitingSince.IsZero(), "nobody owes a reply to a closed conversation")
		assert.Equal(t, at, conv.ClosedAt, "the caller's copy follows")
		rows := e.audited(t, ctx, database.EventClosed)
		require.Len(t, rows, 1)
		assert.Equal(t, nurse, rows[0].Actor)
		assert.Equal(t, []string{"state", "closed", "notice"}, e.rooms.calls, "the room's look, its place, then the notice")
		assert.Equal(t, []string{"Nurse Joy closed this conversation: it leaves the inbox until the patient writes again."}, e.rooms.notices)
		_, total, err := e.db.Conversation.Inbox(ctx, nil, 10)
		require.NoError(t, err)
		assert.Zero(t, total)

		assert.ErrorIs(t, e.svc.Close(ctx, conv, nurse, "Nurse Joy", at), conversation.ErrAlreadyClosed)
		assert.Len(t, e.audited(t, ctx, database.EventClosed), 1, "no second audit row for no change")
		assert.Len(t, e.rooms.notices, 1)
	})
}

func TestStaffReopen(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		assert.ErrorIs(t, e.svc.Reopen(ctx, e.conv, nurse, "Nurse Joy"), conversation.ErrNotClosed)
		assert.Empty(t, e.audited(t, ctx, database.EventReopened))

		require.NoError(t, e.svc.Close(ctx, e.conv, nurse, "Nurse Joy", time.Now()))
		e.rooms.calls, e.rooms.notices = nil, nil
		require.NoError(t, e.svc.Reopen(ctx, e.conv, database.StaffActor("@kim:clinic.example"), "Kim"))
		assert.True(t, e.stored(t, ctx).ClosedAt.IsZero())
		assert.True(t, e.conv.ClosedAt.IsZero(), "the caller's copy follows")
		rows := e.audited(t, ctx, database.EventReopened)
		require.Len(t, rows, 1)
		assert.Equal(t, database.StaffActor("@kim:clinic.example"), rows[0].Actor)
		assert.Equal(t, []string{"state", "reopened", "notice"}, e.rooms.calls)
		assert.Equal(t, []string{"Kim reopened this conversation: it is in the inbox again."}, e.rooms.notices)
		_, total, err := e.db.Conversation.Inbox(ctx, nil, 10)
		require.NoError(t, err)
		assert.Equal(t, 1, total, "in the inbox again")
	})
}

func TestPatientTextReopensOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		require.NoError(t, e.svc.Close(ctx, e.conv, nurse, "Nurse Joy", time.Now()))
		// Two deliveries read the closed conversation before either reopened it.
		first, second := e.stored(t, ctx), e.stored(t, ctx)
		e.rooms.notices = nil

		require.NoError(t, e.svc.Reopen(ctx, first, database.PatientActor, ""))
		assert.ErrorIs(t, e.svc.Reopen(ctx, second, database.PatientActor, ""), conversation.ErrNotClosed)
		assert.True(t, second.ClosedAt.IsZero(), "the late copy learns it is open")
		rows := e.audited(t, ctx, database.EventReopened)
		require.Len(t, rows, 1, "the second reopening's audit row is rolled back")
		assert.Equal(t, database.PatientActor, rows[0].Actor)
		assert.Equal(t, []string{conversation.ReopenedByTextNotice}, e.rooms.notices, "told once")
	})
}
