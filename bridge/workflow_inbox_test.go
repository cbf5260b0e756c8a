package bridge

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
)

// The rule is workflow.InboxNumbers; the bridge says who is invited to every conversation.
func TestStaffInvitedToEveryConversationSeeEveryNumberInTheirInbox(t *testing.T) {
	c := &Connector{Staff: appservice.NewStaffPolicy([]string{"@desk:clinic.example"})}
	c.Config.Teams = []config.TeamConfig{
		{Name: "Triage", Members: []string{"@desk:clinic.example", "@kim:clinic.example"}, Numbers: []string{"+15550001111"}},
	}
	for _, tc := range []struct {
		user id.UserID
		want []string
	}{
		{"@desk:clinic.example", nil},
		{"@kim:clinic.example", []string{"+15550001111"}},
	} {
		assert.Equal(t, tc.want, c.inboxNumbers(tc.user), tc.user.String())
	}
}
