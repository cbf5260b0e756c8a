package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func newConversation(t *testing.T, db *database.Database, clinic, patient string, created time.Time) *database.Conversation {
	t.Helper()
	conv, err := db.Conversation.GetOrCreate(context.Background(), &database.Conversation{
		LoginID: clinic[1:], PortalID: patient[1:], ClinicPhone: clinic, PatientPhone: patient, CreatedAt: created,
	})
	require.NoError(t, err)
	return conv
}

func TestWorkflowAssignCloseReopen(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(1767225600000)
		conv := newConversation(t, db, "+15550001111", "+15551234567", now)
		assert.Empty(t, conv.Assignee)
		assert.True(t, conv.ClosedAt.IsZero())
		assert.True(t, conv.WaitingSince.IsZero())

		require.NoError(t, db.Conversation.SetAssignee(ctx, conv.LoginID, conv.PortalID, "@kim:clinic.example"))
		require.NoError(t, db.Conversation.MarkWaiting(ctx, conv.LoginID, conv.PortalID, now))
		require.NoError(t, db.Conversation.MarkWaiting(ctx, conv.LoginID, conv.PortalID, now.Add(time.Minute)))
		got, err := db.Conversation.Get(ctx, conv.LoginID, conv.PortalID)
		require.NoError(t, err)
		assert.Equal(t, "@kim:clinic.example", got.Assignee)
		assert.Equal(t, now, got.WaitingSince, "a later text does not move the start of the wait")

		reopened, err := db.Conversation.Reopen(ctx, conv.LoginID, conv.PortalID)
		require.NoError(t, err)
		assert.False(t, reopened, "an open conversation is not reopened")

		require.NoError(t, db.Conversation.Close(ctx, conv.LoginID, conv.PortalID, now.Add(time.Hour)))
		got, err = db.Conversation.Get(ctx, conv.LoginID, conv.PortalID)
		require.NoError(t, err)
		assert.Equal(t, now.Add(time.Hour), got.ClosedAt)
		assert.True(t, got.WaitingSince.IsZero(), "closing ends the wait")

		reopened, err = db.Conversation.Reopen(ctx, conv.LoginID, conv.PortalID)
		require.NoError(t, err)
		assert.True(t, reopened)
		reopened, err = db.Conversation.Reopen(ctx, conv.LoginID, conv.PortalID)
		require.NoError(t, err)
		assert.False(t, reopened, "a second reopening is not reported")

		require.NoError(t, db.Conversation.SetAssignee(ctx, conv.LoginID, conv.PortalID, ""))
		got, err = db.Conversation.Get(ctx, conv.LoginID, conv.PortalID)
		require.NoError(t, err)
		assert.Empty(t, got.Assignee)
		assert.True(t, got.ClosedAt.IsZero())
	})
}

func TestWorkflowInboxOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		base := time.UnixMilli(1767225600000)
		const clinic, other = "+15550001111", "+15550002222"
		type row struct {
			patient  string
			assignee string
			urgent   bool
			waiting  time.Duration // before base; 0: not waiting
			closed   bool
			clinic   string
		}
		rows := []row{
			{patient: "+15551230001", assignee: "@kim:clinic.example", waiting: 3 * time.Hour},
			{patient: "+15551230002", waiting: time.Hour},
			{patient: "+15551230003", urgent: true},
			{patient: "+15551230004", waiting: 2 * time.Hour},
			{patient: "+15551230005", urgent: true, waiting: 10 * time.Minute},
			{patient: "+15551230006", waiting: 5 * time.Hour, closed: true},
			{patient: "+15551230007", assignee: "@lee:clinic.example", urgent: true},
			{patient: "+15551230008"},
			{patient: "+15551230009", waiting: 4 * time.Hour, clinic: other},
		}
		for i, r := range rows {
			number := clinic
			if r.clinic != "" {
				number = r.clinic
			}
			conv := newConversation(t, db, number, r.patient, base.Add(time.Duration(i)*time.Second))
			require.NoError(t, db.Conversation.SetAssignee(ctx, conv.LoginID, conv.PortalID, r.assignee))
			require.NoError(t, db.Conversation.SetUrgent(ctx, conv.LoginID, conv.PortalID, r.urgent))
			if r.waiting > 0 {
				require.NoError(t, db.Conversation.MarkWaiting(ctx, conv.LoginID, conv.PortalID, base.Add(-r.waiting)))
			}
			if r.closed {
				require.NoError(t, db.Conversation.Close(ctx, conv.LoginID, conv.PortalID, base))
			}
		}
		patients := func(list []*database.Conversation) []string {
			var out []string
			for _, c := range list {
				out = append(out, c.PatientPhone)
			}
			return out
		}

		list, total, err := db.Conversation.Inbox(ctx, []string{clinic}, 50)
		require.NoError(t, err)
		assert.Equal(t, 7, total)
		assert.Equal(t, []string{
			"+15551230005", // unassigned, urgent, waiting
			"+15551230003", // unassigned, urgent, not waiting
			"+15551230004", // unassigned, waiting 2h
			"+15551230002", // unassigned, waiting 1h
			"+15551230008", // unassigned, not waiting
			"+15551230007", // assigned, urgent
			"+15551230001", // assigned, waiting 3h
		}, patients(list))

		list, total, err = db.Conversation.Inbox(ctx, nil, 3)
		require.NoError(t, err)
		assert.Equal(t, 8, total, "every number, closed ones left out")
		assert.Equal(t, []string{"+15551230005", "+15551230003", "+15551230009"}, patients(list))

		list, total, err = db.Conversation.Inbox(ctx, []string{}, 50)
		require.NoError(t, err)
		assert.Zero(t, total)
		assert.Empty(t, list)
	})
}

func TestWorkflowTeamSpace(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		roomID, err := db.TeamSpace().Get(ctx, "Triage")
		require.NoError(t, err)
		assert.Empty(t, roomID)
		require.NoError(t, db.TeamSpace().Put(ctx, "Triage", "!space1:clinic.example"))
		require.NoError(t, db.TeamSpace().Put(ctx, "Front desk", "!space2:clinic.example"))
		require.NoError(t, db.TeamSpace().Put(ctx, "Triage", "!space3:clinic.example"))
		roomID, err = db.TeamSpace().Get(ctx, "Triage")
		require.NoError(t, err)
		assert.Equal(t, "!space3:clinic.example", roomID)
		roomID, err = db.TeamSpace().Get(ctx, "Front desk")
		require.NoError(t, err)
		assert.Equal(t, "!space2:clinic.example", roomID)
	})
}
