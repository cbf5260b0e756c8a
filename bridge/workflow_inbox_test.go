package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

func TestFormatWait(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{
		{-time.Minute, "0m"},
		{59 * time.Second, "0m"},
		{5*time.Minute + 30*time.Second, "5m"},
		{2*time.Hour + 10*time.Minute, "2h 10m"},
		{3*24*time.Hour + 4*time.Hour + 59*time.Minute, "3d 4h"},
	} {
		assert.Equal(t, tc.want, formatWait(tc.wait), tc.wait.String())
	}
}

func TestSpaceOrder(t *testing.T) {
	closed := time.UnixMilli(1767225600000)
	for _, tc := range []struct {
		conv database.Conversation
		want string
	}{
		{database.Conversation{}, orderOpen},
		{database.Conversation{Urgent: true}, orderUrgent},
		{database.Conversation{Urgent: true, ClosedAt: closed}, orderClosed},
		{database.Conversation{ClosedAt: closed}, orderClosed},
	} {
		assert.Equal(t, tc.want, spaceOrder(&tc.conv))
	}
	assert.Less(t, orderUrgent, orderOpen, "urgent conversations sort first")
	assert.Less(t, orderOpen, orderClosed, "closed conversations sort last")
}

func TestInboxNumbersAndTeams(t *testing.T) {
	c := &Connector{Staff: appservice.NewStaffPolicy([]string{"@desk:clinic.example"})}
	c.Config.Teams = []config.TeamConfig{
		{Name: "Triage", Members: []string{"@kim:clinic.example", "@lee:clinic.example"}, Numbers: []string{"+15550001111"}},
		{Name: "Billing", Members: []string{"@lee:clinic.example"}, Numbers: []string{"+15550002222"}},
		{Name: "Doctors", Members: []string{"@dr.ng:clinic.example"}},
	}
	for _, tc := range []struct {
		user id.UserID
		want []string
	}{
		{"@desk:clinic.example", nil},
		{"@kim:clinic.example", []string{"+15550001111"}},
		{"@lee:clinic.example", []string{"+15550001111", "+15550002222"}},
		{"@dr.ng:clinic.example", nil},
		{"@locum:clinic.example", nil},
	} {
		assert.Equal(t, tc.want, c.inboxNumbers(tc.user), tc.user.String())
	}

	names := func(teams []config.TeamConfig) (out []string) {
		for _, team := range teams {
			out = append(out, team.Name)
		}
		return
	}
	assert.Equal(t, []string{"Triage", "Doctors"}, names(c.teamsOf("+15550001111")))
	assert.Equal(t, []string{"Billing", "Doctors"}, names(c.teamsOf("+15550002222")))
	assert.Equal(t, []string{"Doctors"}, names(c.teamsOf("+15550003333")))
}
