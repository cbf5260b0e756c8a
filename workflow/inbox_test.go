package workflow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

var clinicTeams = []config.TeamConfig{
	{Name: "Triage", Members: []string{"@kim:clinic.example", "@lee:clinic.example"}, Numbers: []string{"+15550001111"}},
	{Name: "Billing", Members: []string{"@lee:clinic.example"}, Numbers: []string{"+15550002222"}},
	{Name: "Doctors", Members: []string{"@dr.ng:clinic.example"}},
}

func TestAStaffMembersInboxListsTheirTeamsNumbersOrEveryNumber(t *testing.T) {
	for _, tc := range []struct {
		name         string
		user         string
		invitedToAll bool
		want         []string
	}{
		{"front desk, invited to every conversation", "@desk:clinic.example", true, nil},
		{"one team", "@kim:clinic.example", false, []string{"+15550001111"}},
		{"two teams", "@lee:clinic.example", false, []string{"+15550001111", "+15550002222"}},
		{"a team answering every number", "@dr.ng:clinic.example", false, nil},
		{"in no team", "@locum:clinic.example", false, nil},
	} {
		assert.Equal(t, tc.want, InboxNumbers(clinicTeams, tc.user, tc.invitedToAll), tc.name)
	}
}

func TestInboxEntrySaysUrgencyPatientOwnerAndWait(t *testing.T) {
	now := time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		conv  database.Conversation
		owner string
		want  []string
	}{
		{"new and waiting", database.Conversation{WaitingSince: now.Add(-25 * time.Minute)}, "",
			[]string{"Maria Lopez", "unassigned", "waiting 25m"}},
		{"urgent and taken", database.Conversation{Urgent: true, Assignee: "@kim:clinic.example", WaitingSince: now.Add(-3 * time.Hour)}, "Kim Park",
			[]string{"🚨 urgent", "Maria Lopez", "assigned to Kim Park", "waiting 3h 0m"}},
		{"answered", database.Conversation{Assignee: "@kim:clinic.example"}, "Kim Park",
			[]string{"Maria Lopez", "assigned to Kim Park", "not waiting"}},
	} {
		assert.Equal(t, tc.want, InboxEntry(&tc.conv, "Maria Lopez", tc.owner, now), tc.name)
	}
	assert.Equal(t, "🚨 (555) 123-4567", RoomName("(555) 123-4567", true))
	assert.Equal(t, "Maria Lopez", RoomName("Maria Lopez", false))
}

func TestTheRoomTopicShowsOwnerUrgencyAndClosing(t *testing.T) {
	closed := time.Date(2026, 3, 4, 17, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		conv database.Conversation
		want string
	}{
		{"new", database.Conversation{}, ""},
		{"taken and urgent", database.Conversation{Assignee: "@kim:clinic.example", Urgent: true}, " · assigned to Kim Park · 🚨 urgent"},
		{"closed", database.Conversation{Assignee: "@kim:clinic.example", ClosedAt: closed}, " · assigned to Kim Park · closed"},
	} {
		owner := ""
		if tc.conv.Assignee != "" {
			owner = "Kim Park"
		}
		assert.Equal(t, tc.want, TopicSuffix(&tc.conv, owner), tc.name)
	}
}

func TestTheAssigneeIsMentionedOncePerMinuteOfABurst(t *testing.T) {
	var mentions Mentions
	const maria, john = "15550001111/15551234567", "15550001111/15557654321"
	now := time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)
	assert.True(t, mentions.Due(maria, now))
	assert.False(t, mentions.Due(maria, now.Add(20*time.Second)), "the same burst")
	assert.True(t, mentions.Due(john, now.Add(20*time.Second)), "another conversation")
	assert.False(t, mentions.Due(maria, now.Add(59*time.Second)))
	assert.True(t, mentions.Due(maria, now.Add(time.Minute)), "a minute after the last mention")
	assert.True(t, mentions.Due(maria, now.Add(-time.Hour)), "a clock moved back mentions again")
}
