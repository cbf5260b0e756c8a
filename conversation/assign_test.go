package conversation_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
)

func TestAssignTakeAndUnassignAreAuditedShownAndTold(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		assert.ErrorIs(t, e.svc.Assign(ctx, e.conv, nurse, ""), conversation.ErrNotAssigned)

		require.NoError(t, e.svc.Assign(ctx, e.conv, nurse, "@nurse:clinic.example"))
		assert.Equal(t, "@nurse:clinic.example", e.stored(t, ctx).Assignee)
		assert.Equal(t, "@nurse:clinic.example", e.conv.Assignee, "the caller's copy follows")
		assert.ErrorIs(t, e.svc.Assign(ctx, e.conv, nurse, "@nurse:clinic.example"), conversation.ErrAlreadyAssigned)

		require.NoError(t, e.svc.Assign(ctx, e.conv, nurse, "@dr.lee:clinic.example"))
		require.NoError(t, e.svc.Assign(ctx, e.conv, database.StaffActor("@dr.lee:clinic.example"), ""))
		assert.Empty(t, e.stored(t, ctx).Assignee)

		assert.Equal(t, []string{
			"Nurse Kim took this conversation.",
			"Nurse Kim assigned this conversation to Dr Lee.",
			"Dr Lee unassigned this conversation (it was Dr Lee's).",
		}, e.rooms.notices)
		assert.Equal(t, []string{"state", "notice", "state", "notice", "state", "notice"}, e.rooms.calls, "the room shows the owner, then tells")
		assigned := e.audited(t, ctx, database.EventAssigned)
		require.Len(t, assigned, 2)
		assert.Equal(t, "@dr.lee:clinic.example", assigned[1].Detail)
		assert.Len(t, e.audited(t, ctx, database.EventUnassigned), 1)
	})
}

func TestStaffMarkUrgentAndRoutine(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		assert.ErrorIs(t, e.svc.SetUrgency(ctx, e.conv, nurse, "Nurse Kim", false), conversation.ErrNotUrgent)
		require.NoError(t, e.svc.SetUrgency(ctx, e.conv, nurse, "Nurse Kim", true))
		assert.True(t, e.stored(t, ctx).Urgent)
		assert.ErrorIs(t, e.svc.SetUrgency(ctx, e.conv, nurse, "Nurse Kim", true), conversation.ErrAlreadyUrgent)
		require.NoError(t, e.svc.SetUrgency(ctx, e.conv, nurse, "Nurse Kim", false))
		assert.False(t, e.stored(t, ctx).Urgent)
		assert.Equal(t, []string{"🚨 Nurse Kim marked this conversation urgent.",
			"Nurse Kim marked this conversation routine (no longer urgent)."}, e.rooms.notices)
		assert.Len(t, e.audited(t, ctx, database.EventMarkedUrgent), 1)
		assert.Len(t, e.audited(t, ctx, database.EventMarkedRoutine), 1)
	})
}
