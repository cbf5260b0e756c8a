package appservice

import (
	"slices"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// Federation (DESIGN.md "Federation"): a conversation room federates only with the
// clinic's own server and network.federation.allowed_servers, kept as the room's
// m.room.server_acl; `!sms refer` invites a user of an allowed server; anyone of another
// server invited by other means is removed. privacy.mask_room_names keeps names and full
// numbers out of what travels in clear (room name, topic, the patient's display name,
// bridge info), and pins an encrypted notice with them instead.

// Federation is the policy of which servers take part in conversations and what travels
// to them in clear.
type Federation struct {
	// ServerName is the clinic's homeserver's server name (maybe with a port).
	ServerName string
	// Allowed are the hosts of federation.allowed_servers (config.FederationConfig.AllowedHosts).
	Allowed []string
	// MaskNames is privacy.mask_room_names.
	MaskNames bool
	// FormatPhone writes a number as staff know it (the clinic's region).
	FormatPhone func(e164 string) string
}

// OwnHost is the clinic's homeserver host (its server name without a port).
func (f Federation) OwnHost() string {
	host, _ := config.ServerHost(f.ServerName)
	return host
}

// ACLHosts are the hosts a conversation room federates with: the own server first, then
// the allowed servers.
func (f Federation) ACLHosts() []string {
	own := f.OwnHost()
	hosts := []string{own}
	for _, h := range f.Allowed {
		if h != own {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// ServerACL is the rooms' m.room.server_acl: ServerACL of ACLHosts, and the own server
// name as written when it has a port. Synapse (1.163) checks an ACL it is asked to send
// against its server name with the port ("Can't create an ACL event that denies the
// local server", synapse/events/validator.py; every room's first text then fails),
// while servers match ACLs against hosts without the port (the spec, and Synapse's own
// federation checks): the extra entry satisfies the one and matches no host in the other.
func (f Federation) ServerACL() *event.ServerACLEventContent {
	acl := ServerACL(f.ACLHosts())
	if name := strings.TrimSpace(f.ServerName); name != "" && name != f.OwnHost() {
		acl.Allow = append(acl.Allow, name)
	}
	return acl
}

// OtherServers are the allowed servers besides the clinic's own.
func (f Federation) OtherServers() []string {
	return f.ACLHosts()[1:]
}

// ServerAllowed says whether a user's server may take part in conversations.
func (f Federation) ServerAllowed(userID id.UserID) bool {
	_, server, err := userID.ParseAndValidateRelaxed()
	if err != nil {
		return false
	}
	host, ok := config.ServerHost(server)
	return ok && slices.Contains(f.ACLHosts(), host)
}

// Refuses says whether a membership of target is removed by the membership guard: an
// invite, join or knock of a user whose server is not allowed.
func (f Federation) Refuses(target id.UserID, membership event.Membership) bool {
	switch membership {
	case event.MembershipInvite, event.MembershipJoin, event.MembershipKnock:
		return !f.ServerAllowed(target)
	}
	return false
}

// Policy is what ApplyRoomPolicy puts in a room, to find rooms a config change has not
// reached yet.
func (f Federation) Policy() database.RoomPolicy {
	return database.RoomPolicy{AllowedServers: f.ACLHosts(), MaskNames: f.MaskNames}
}

// PatientLabel is the patient as room names, topics and display names show them: the
// formatted number, or only its last four digits when names are masked.
func (f Federation) PatientLabel(e164 string) string {
	if f.MaskNames {
		return MaskedNumber(e164)
	}
	return f.FormatPhone(e164)
}
