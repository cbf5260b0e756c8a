package appservice_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/database"
)

var clinicFederation = appservice.Federation{ServerName: "clinic.example:8448", Allowed: []string{"clinic.example", "hospital.example"},
	FormatPhone: func(e164 string) string { return "(555) 123-4567" }}

func TestRoomsFederateWithTheOwnServerFirstThenTheAllowedOnes(t *testing.T) {
	assert.Equal(t, "clinic.example", clinicFederation.OwnHost(), "the port is not part of the ACL")
	assert.Equal(t, []string{"clinic.example", "hospital.example"}, clinicFederation.ACLHosts(), "the own server is listed once")
	assert.Equal(t, []string{"hospital.example"}, clinicFederation.OtherServers())
	assert.Equal(t, database.RoomPolicy{AllowedServers: []string{"clinic.example", "hospital.example"}}, clinicFederation.Policy())

	alone := appservice.Federation{ServerName: "clinic.example"}
	assert.Equal(t, []string{"clinic.example"}, alone.ACLHosts(), "with the list empty, rooms stay on the local server")
	assert.Empty(t, alone.OtherServers())
	assert.Equal(t, []string{"clinic.example"}, alone.ServerACL().Allow)
}

// Synapse refuses to send an ACL that does not match its server name port included;
// the hosts stay first, for the servers that match them.
func TestServerACLListsTheOwnServerNameWithItsPort(t *testing.T) {
	assert.Equal(t, []string{"clinic.example", "hospital.example", "clinic.example:8448"}, clinicFederation.ServerACL().Allow)
	loopback := appservice.Federation{ServerName: "127.0.0.1:34567"}
	acl := loopback.ServerACL()
	assert.Equal(t, []string{"127.0.0.1", "127.0.0.1:34567"}, acl.Allow)
	assert.True(t, acl.AllowIPLiterals)
	assert.Equal(t, []string{}, acl.Deny)
}

func TestOnlyUsersOfAllowedServersTakePart(t *testing.T) {
	for user, allowed := range map[id.UserID]bool{
		"@nurse.kim:clinic.example":         true,
		"@dr.lee:hospital.example":          true,
		"@dr.lee:HOSPITAL.example:443":      true,
		"@someone:elsewhere.example":        false,
		"not a user id":                     false,
		"@dr.lee:hospital.example.attacker": false,
	} {
		assert.Equal(t, allowed, clinicFederation.ServerAllowed(user), user)
	}
}

func TestTheGuardRefusesInvitesJoinsAndKnocksOfOtherServers(t *testing.T) {
	outsider, colleague := id.UserID("@someone:elsewhere.example"), id.UserID("@dr.lee:hospital.example")
	for _, m := range []event.Membership{event.MembershipInvite, event.MembershipJoin, event.MembershipKnock} {
		assert.True(t, clinicFederation.Refuses(outsider, m), m)
		assert.False(t, clinicFederation.Refuses(colleague, m), m)
	}
	for _, m := range []event.Membership{event.MembershipLeave, event.MembershipBan} {
		assert.False(t, clinicFederation.Refuses(outsider, m), "leaving or banned is not taking part: %s", m)
	}
}

func TestMaskedRoomsShowTheLastFourDigits(t *testing.T) {
	assert.Equal(t, "(555) 123-4567", clinicFederation.PatientLabel("+15551234567"))
	masked := clinicFederation
	masked.MaskNames = true
	assert.Equal(t, "Patient …4567", masked.PatientLabel("+15551234567"))
	assert.True(t, masked.Policy().MaskNames)
}
