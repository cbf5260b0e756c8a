package appservice_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/database"
)

func TestThePatientNoticeIsPinnedAndReplacesOnlyTheBridgesEarlierPin(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		room := e.conversationRoom(t, ctx, "+15551234567")
		require.NoError(t, e.rooms.PinPatientNotice(ctx, room, "+15551234567"))
		assert.Equal(t, []string{"📌 Patient: formatted +15551234567. The room's name and topic show only the last four digits " +
			"(privacy.mask_room_names), because they are not end-to-end encrypted."}, e.bot.notices[room.ID])
		first, err := e.db.Conversation.PinnedNotice(ctx, room.Key.LoginID, room.Key.PortalID)
		require.NoError(t, err)
		assert.Equal(t, "$notice1", first)

		// A nurse pins a message of her own; then the patient is named.
		staffPin := id.EventID("$lab-results")
		require.NoError(t, e.bot.SendState(ctx, room.ID, event.StatePinnedEvents, "",
			&event.PinnedEventsEventContent{Pinned: []id.EventID{"$notice1", staffPin}}))
		require.NoError(t, e.db.Conversation.SetPatientName(ctx, "+15551234567", "Maria Lopez"))
		require.NoError(t, e.rooms.PinPatientNotice(ctx, room, "+15551234567"))
		assert.Contains(t, e.bot.notices[room.ID][1], "📌 Patient: Maria Lopez, formatted +15551234567.")
		pins := e.bot.get(room.ID, event.StatePinnedEvents, "").(*event.PinnedEventsEventContent)
		assert.Equal(t, []id.EventID{"$notice2", staffPin}, pins.Pinned, "the new notice first, the nurse's pin kept")
		second, err := e.db.Conversation.PinnedNotice(ctx, room.Key.LoginID, room.Key.PortalID)
		require.NoError(t, err)
		assert.Equal(t, "$notice2", second)
	})
}

func TestMembersOfServersNotAllowedAreRemovedAuditedAndTold(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		room := e.conversationRoom(t, ctx, "+15551234567")
		e.bot.members[room.ID] = []appservice.Member{
			{UserID: "@nurse.kim:clinic.example", Membership: event.MembershipJoin},
			{UserID: "@dr.lee:hospital.example", Membership: event.MembershipJoin},
			{UserID: "@spy:elsewhere.example", Membership: event.MembershipInvite},
			{UserID: "@gone:elsewhere.example", Membership: event.MembershipLeave},
			{UserID: "@knocker:elsewhere.example", Membership: event.MembershipKnock},
		}
		require.NoError(t, e.rooms.RemoveDisallowedMembers(ctx, room))
		assert.Equal(t, []id.UserID{"@spy:elsewhere.example", "@knocker:elsewhere.example"}, e.bot.kicked[room.ID])
		removed := audited(t, ctx, e.db, room, database.EventMemberRemoved)
		require.Len(t, removed, 2)
		assert.Equal(t, "@spy:elsewhere.example (invite): server removed from the allow-list", removed[0].Detail)
		assert.Equal(t, database.OutcomeRefused, removed[0].Outcome)
		require.Len(t, e.bot.notices[room.ID], 2)
		assert.Equal(t, "⚠ @spy:elsewhere.example was removed from this conversation: elsewhere.example is not on this clinic's "+
			"federation allow-list. Colleagues of allowed organisations are invited with `!sms refer @user:server`.", e.bot.notices[room.ID][0])

		refused, detail := e.rooms.GuardMembership("@spy:elsewhere.example", "@nurse.kim:clinic.example", event.MembershipInvite)
		assert.True(t, refused)
		assert.Equal(t, "@spy:elsewhere.example invite by @nurse.kim:clinic.example: server not allowed", detail)
		refused, _ = e.rooms.GuardMembership("@dr.lee:hospital.example", "@nurse.kim:clinic.example", event.MembershipInvite)
		assert.False(t, refused)
	})
}

func TestRoomPoliciesReachEveryRoomOnceAfterAConfigChange(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		first := e.conversationRoom(t, ctx, "+15551234567")
		second := e.conversationRoom(t, ctx, "+15559876543")
		e.bot.members[second.ID] = []appservice.Member{{UserID: "@spy:elsewhere.example", Membership: event.MembershipJoin}}
		e.bot.failACL = second.ID

		e.rooms.ApplyRoomPolicies(ctx)
		acl := e.bot.get(first.ID, event.StateServerACL, "").(*event.ServerACLEventContent)
		assert.Equal(t, []string{"clinic.example", "hospital.example"}, acl.Allow)
		assert.Empty(t, e.portals.shown, "masking did not change")
		policy, err := e.db.Conversation.RoomPolicy(ctx, first.Key.LoginID, first.Key.PortalID)
		require.NoError(t, err)
		assert.Equal(t, e.rooms.Federation().Policy(), *policy)
		policy, err = e.db.Conversation.RoomPolicy(ctx, second.Key.LoginID, second.Key.PortalID)
		require.NoError(t, err)
		assert.Nil(t, policy, "a room that failed keeps its old policy, to be retried at the next start")

		// The next start: the failed room is reached; the first is not touched again.
		e.bot.failACL = ""
		delete(e.bot.state, "!15551234567:clinic.example|m.room.server_acl|")
		e.rooms.ApplyRoomPolicies(ctx)
		assert.Nil(t, e.bot.get(first.ID, event.StateServerACL, ""), "each room once")
		assert.NotNil(t, e.bot.get(second.ID, event.StateServerACL, ""))
		assert.Equal(t, []id.UserID{"@spy:elsewhere.example"}, e.bot.kicked[second.ID])

		// Masking turned on: every room shows it and pins the patient notice.
		e.cfg.Privacy.MaskRoomNames = true
		e.rooms.ApplyRoomPolicies(ctx)
		assert.ElementsMatch(t, []string{first.Key.PortalID, second.Key.PortalID}, e.portals.shown)
		assert.Len(t, e.bot.notices[first.ID], 1)
		assert.Contains(t, e.bot.notices[first.ID][0], "📌 Patient:")
		e.rooms.ApplyRoomPolicies(ctx)
		assert.Len(t, e.portals.shown, 2, "applied once")
	})
}

func TestAReferralInvitesColleaguesOfAllowedServersOnly(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		room := e.conversationRoom(t, ctx, "+15551234567")
		nurse := database.StaffActor("@nurse.kim:clinic.example")
		require.NoError(t, e.rooms.Refer(ctx, room, nurse, "@dr.lee:hospital.example"))
		assert.Equal(t, []id.UserID{"@dr.lee:hospital.example"}, e.bot.invited[room.ID])
		referred := audited(t, ctx, e.db, room, database.EventReferred)
		require.Len(t, referred, 1)
		assert.Equal(t, "@dr.lee:hospital.example", referred[0].Detail)

		err := e.rooms.Refer(ctx, room, nurse, "@someone:elsewhere.example")
		assert.ErrorIs(t, err, appservice.ErrServerNotAllowed)
		assert.Len(t, e.bot.invited[room.ID], 1, "not invited")
		assert.Len(t, audited(t, ctx, e.db, room, database.EventReferralRefused), 1)

		e.bot.refuse = "@dr.ng:hospital.example"
		err = e.rooms.Refer(ctx, room, nurse, "@dr.ng:hospital.example")
		var notInvited *appservice.NotInvitedError
		require.ErrorAs(t, err, &notInvited)
		assert.Contains(t, err.Error(), "M_FORBIDDEN")
		assert.Len(t, audited(t, ctx, e.db, room, database.EventReferred), 1, "a refused invite is no referral")
	})
}
