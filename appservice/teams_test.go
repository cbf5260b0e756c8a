package appservice_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

var clinicTeams = []config.TeamConfig{
	{Name: "Triage", Members: []string{"@kim:clinic.example", "@lee:clinic.example"}, Numbers: []string{"+15550001111"}},
	{Name: "Billing", Members: []string{"@lee:clinic.example"}, Numbers: []string{"+15550002222"}},
	{Name: "Doctors", Members: []string{"@dr.ng:clinic.example"}},
}

func TestTeamSpacesSortUrgentThenOpenThenClosed(t *testing.T) {
	closed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		conv database.Conversation
		want string
	}{
		{"open", database.Conversation{}, appservice.OrderOpen},
		{"urgent", database.Conversation{Urgent: true}, appservice.OrderUrgent},
		{"closed while urgent", database.Conversation{Urgent: true, ClosedAt: closed}, appservice.OrderClosed},
		{"closed", database.Conversation{ClosedAt: closed}, appservice.OrderClosed},
	} {
		assert.Equal(t, tc.want, appservice.SpaceOrder(&tc.conv), tc.name)
	}
	assert.Less(t, appservice.OrderUrgent, appservice.OrderOpen, "urgent conversations sort first")
	assert.Less(t, appservice.OrderOpen, appservice.OrderClosed, "closed conversations sort last")
}

func TestANumberIsAnsweredByTheTeamsNamingItAndTeamsNamingNone(t *testing.T) {
	names := func(teams []config.TeamConfig) (out []string) {
		for _, team := range teams {
			out = append(out, team.Name)
		}
		return
	}
	assert.Equal(t, []string{"Triage", "Doctors"}, names(appservice.TeamsOf(clinicTeams, "+15550001111")))
	assert.Equal(t, []string{"Billing", "Doctors"}, names(appservice.TeamsOf(clinicTeams, "+15550002222")))
	assert.Equal(t, []string{"Doctors"}, names(appservice.TeamsOf(clinicTeams, "+15550003333")))
}

func TestANewConversationJoinsItsTeamsAndTheirSpaces(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		e.cfg.Teams = clinicTeams
		first, second := e.conversationRoom(t, ctx, "+15551234567"), e.conversationRoom(t, ctx, "+15559876543")
		conv, err := e.db.Conversation.Get(ctx, first.Key.LoginID, first.Key.PortalID)
		require.NoError(t, err)
		require.NoError(t, e.rooms.JoinTeams(ctx, first.ID, conv))
		require.NoError(t, e.rooms.JoinTeams(ctx, second.ID, conv))

		assert.Equal(t, []id.UserID{"@kim:clinic.example", "@lee:clinic.example", "@dr.ng:clinic.example"}, e.bot.invited[first.ID])
		assert.Equal(t, []string{"Triage · Riverside Clinic", "Doctors · Riverside Clinic"}, e.bot.spaces, "each space created once")
		triage, err := e.db.TeamSpace().Get(ctx, "Triage")
		require.NoError(t, err)
		assert.Equal(t, "!space1:clinic.example", triage)
		assert.Equal(t, []id.UserID{"@kim:clinic.example", "@lee:clinic.example"}, e.bot.invited["!space1:clinic.example"],
			"the team is invited to its space once per process")

		child := e.bot.get("!space1:clinic.example", event.StateSpaceChild, first.ID.String()).(*event.SpaceChildEventContent)
		assert.Equal(t, &event.SpaceChildEventContent{Via: []string{"clinic.example"}, Order: appservice.OrderOpen}, child)
		parent := e.bot.get(first.ID, event.StateSpaceParent, "!space1:clinic.example").(*event.SpaceParentEventContent)
		assert.True(t, parent.Canonical, "the first team's space is the room's home")
		assert.False(t, e.bot.get(first.ID, event.StateSpaceParent, "!space2:clinic.example").(*event.SpaceParentEventContent).Canonical)

		conv.Urgent = true
		e.rooms.UpdateSpaceOrder(ctx, first.ID, conv)
		child = e.bot.get("!space2:clinic.example", event.StateSpaceChild, first.ID.String()).(*event.SpaceChildEventContent)
		assert.Equal(t, appservice.OrderUrgent, child.Order)

		assert.True(t, e.rooms.IsTeamSpace(ctx, "!space2:clinic.example"))
		assert.False(t, e.rooms.IsTeamSpace(ctx, first.ID))
	})
}

func TestAFailedTeamInviteFailsTheRoomSetup(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		e.cfg.Teams = clinicTeams
		room := e.conversationRoom(t, ctx, "+15551234567")
		conv, err := e.db.Conversation.Get(ctx, room.Key.LoginID, room.Key.PortalID)
		require.NoError(t, err)
		e.bot.refuse = "@dr.ng:clinic.example"
		err = e.rooms.JoinTeams(ctx, room.ID, conv)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "team Doctors")
		assert.Empty(t, e.bot.spaces, "the room joins no space until every invite went out")
	})
}
