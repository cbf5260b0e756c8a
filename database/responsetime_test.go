package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestResponseTimes(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rq := db.ResponseTimes()
		base := time.UnixMilli(time.Now().UnixMilli())
		for _, c := range []struct{ login, patient string }{
			{"15550001111", "+15551234567"}, {"15550001111", "+15557654321"}, {"15550002222", "+15559876543"},
		} {
			_, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: c.login, PortalID: c.patient[1:],
				ClinicPhone: "+" + c.login, PatientPhone: c.patient})
			require.NoError(t, err)
		}
		wait := func(login, portal string, since time.Time) {
			_, err := db.Exec(ctx, `UPDATE conversation SET waiting_since=$3 WHERE login_id=$1 AND portal_id=$2`,
				login, portal, since.UnixMilli())
			require.NoError(t, err)
		}

		backlog, err := rq.Backlog(ctx, "")
		require.NoError(t, err)
		assert.Zero(t, backlog.Waiting)
		assert.True(t, backlog.Oldest.IsZero())

		wait("15550001111", "15551234567", base)
		wait("15550001111", "15557654321", base.Add(5*time.Minute))
		wait("15550002222", "15559876543", base.Add(-time.Hour))
		backlog, err = rq.Backlog(ctx, "15550001111")
		require.NoError(t, err)
		assert.Equal(t, 2, backlog.Waiting)
		assert.Equal(t, base, backlog.Oldest)
		backlog, err = rq.Backlog(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, 3, backlog.Waiting)
		assert.Equal(t, base.Add(-time.Hour), backlog.Oldest)
		// A closed conversation is not in the backlog.
		_, err = db.Exec(ctx, `UPDATE conversation SET closed_at=$2 WHERE login_id=$1`, "15550002222", base.UnixMilli())
		require.NoError(t, err)
		backlog, err = rq.Backlog(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, 2, backlog.Waiting)

		// Only the first reply ends the wait: the second, based on the same wait, records nothing.
		first := &database.ResponseTime{LoginID: "15550001111", PortalID: "15551234567", WaitedFrom: base,
			AnsweredAt: base.Add(10 * time.Minute), AnsweredBy: "@nurse:clinic.example"}
		recorded, err := rq.EndWait(ctx, first)
		require.NoError(t, err)
		assert.True(t, recorded)
		second := *first
		second.AnsweredAt, second.AnsweredBy = base.Add(11*time.Minute), "@doctor:clinic.example"
		recorded, err = rq.EndWait(ctx, &second)
		require.NoError(t, err)
		assert.False(t, recorded)
		conv, err := db.Conversation.Get(ctx, "15550001111", "15551234567")
		require.NoError(t, err)
		assert.True(t, conv.WaitingSince.IsZero(), "the wait is over")
		// A reply based on a stale wait does not end the newer one.
		recorded, err = rq.EndWait(ctx, &database.ResponseTime{LoginID: "15550001111", PortalID: "15557654321",
			WaitedFrom: base, AnsweredAt: base.Add(time.Hour), AnsweredBy: "@nurse:clinic.example"})
		require.NoError(t, err)
		assert.False(t, recorded)
		recorded, err = rq.EndWait(ctx, &database.ResponseTime{LoginID: "15550001111", PortalID: "15557654321",
			WaitedFrom: base.Add(5 * time.Minute), AnsweredAt: base.Add(50 * time.Minute), AnsweredBy: "@nurse:clinic.example"})
		require.NoError(t, err)
		assert.True(t, recorded)

		list, err := rq.List(ctx, "15550001111", base, base.Add(24*time.Hour))
		require.NoError(t, err)
		require.Len(t, list, 2)
		assert.Equal(t, first, list[0])
		assert.Equal(t, 10*time.Minute, list[0].Wait())
		assert.Equal(t, 45*time.Minute, list[1].Wait())
		list, err = rq.List(ctx, "15550001111", base.Add(20*time.Minute), base.Add(24*time.Hour))
		require.NoError(t, err)
		require.Len(t, list, 1, "answers before since are left out")
		list, err = rq.List(ctx, "15550002222", base, base.Add(24*time.Hour))
		require.NoError(t, err)
		assert.Empty(t, list, "another clinic number's answers are left out")
		list, err = rq.List(ctx, "", base, base.Add(24*time.Hour))
		require.NoError(t, err)
		assert.Len(t, list, 2)

		backlog, err = rq.Backlog(ctx, "15550001111")
		require.NoError(t, err)
		assert.Zero(t, backlog.Waiting)
	})
}
