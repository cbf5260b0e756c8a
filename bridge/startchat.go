package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

var (
	_ bridgev2.IdentifierResolvingNetworkAPI = (*Client)(nil)
	_ bridgev2.GhostDMCreatingNetworkAPI     = (*Client)(nil)
	_ bridgev2.IdentifierValidatingNetwork   = (*Connector)(nil)
)

// ValidateUserID is called before a ghost ID from a Matrix user ID is used: only the
// shape of a patient's opaque ID can be a patient.
func (c *Connector) ValidateUserID(id networkid.UserID) bool {
	return IsPatientID(id)
}

// ResolveIdentifier is called by `start-chat`, `resolve-identifier` and the provisioning
// API with a phone number in any form the region allows. Every form of one number maps
// to one E.164 ghost and one conversation room.
func (cl *Client) ResolveIdentifier(ctx context.Context, identifier string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	phone, err := sms.NormalizePhone(identifier, cl.Connector.Config.DefaultRegion)
	if err != nil {
		return nil, bridgev2.RespError(mautrix.MInvalidParam.WithMessage("%q is not a phone number this clinic can text", identifier)).
			WithInternalError(err)
	}
	if phone == cl.meta().Phone {
		return nil, bridgev2.RespError(mautrix.MInvalidParam.WithMessage("%s is the clinic's own number", phone))
	}
	return cl.resolvePhone(ctx, phone, createChat)
}

// CreateChatWithGhost is called when staff start a chat with a ghost's Matrix ID: the
// ghost of a patient this bridge knows.
func (cl *Client) CreateChatWithGhost(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.CreateChatResponse, error) {
	phone, err := cl.Connector.patientPhoneOf(ctx, ghost.ID)
	if err != nil {
		return nil, err
	} else if phone == "" {
		return nil, bridgev2.RespError(mautrix.MNotFound.WithMessage("%s is no patient of this clinic", ghost.Intent.GetMXID()))
	}
	resp, err := cl.resolvePhone(ctx, phone, true)
	if err != nil {
		return nil, err
	}
	return resp.Chat, nil
}

func (cl *Client) resolvePhone(ctx context.Context, phone string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	ghost, err := cl.Connector.patientGhost(ctx, phone)
	if err != nil {
		return nil, err
	}
	resp := &bridgev2.ResolveIdentifierResponse{Ghost: ghost, UserID: ghost.ID}
	resp.UserInfo, _ = cl.GetUserInfo(ctx, ghost)
	if !createChat {
		return resp, nil
	}
	portal, created, err := cl.Connector.openConversation(ctx, cl.UserLogin, phone)
	if err != nil {
		return nil, err
	} else if created {
		markCreatedDM(ctx) // provisioning.go
	}
	resp.Chat = &bridgev2.CreateChatResponse{PortalKey: portal.PortalKey, Portal: portal}
	return resp, nil
}

func fnStartChat(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	login, rest := c.startChatLogin(ce)
	if login == nil {
		return
	}
	if len(rest) == 0 {
		ce.Reply("Usage: `$cmdprefix start-chat <patient number>`, e.g. `$cmdprefix start-chat (555) 123-4567`")
		return
	}
	raw := strings.Join(rest, " ")
	phone, err := sms.NormalizePhone(raw, c.Config.DefaultRegion)
	if err != nil {
		ce.Reply("%q is not a phone number this clinic can text.", raw)
		return
	}
	if phone == login.Metadata.(*UserLoginMetadata).Phone {
		ce.Reply("%s is the clinic's own number.", sms.FormatPhone(phone, c.Config.DefaultRegion))
		return
	}
	actor := ce.User.MXID
	portal, created, err := c.startConversation(ce.Ctx, login, phone, database.StaffActor(actor), c.memberName(ce.Ctx, ce.RoomID, actor), "start-chat")
	if err != nil {
		ce.Log.Err(err).Msg("Failed to start a conversation")
		ce.Reply("The conversation could not be started; try again.")
		return
	}
	// The one who started it is in the room even when no staff policy lists them.
	if c.Rooms.Federation().ServerAllowed(actor) {
		if err = c.Bridge.Bot.EnsureInvited(ce.Ctx, portal.MXID, actor); err != nil {
			ce.Log.Err(err).Msg("Failed to invite the staff member to the conversation")
		}
	}
	number := sms.FormatPhone(phone, c.Config.DefaultRegion)
	link := portal.MXID.URI(c.Bridge.Matrix.ServerName()).MatrixToURL()
	if created {
		ce.Reply("Started a conversation with %s from %s: [open it](%s). What you write there reaches the patient.",
			number, sms.FormatPhone(login.Metadata.(*UserLoginMetadata).Phone, c.Config.DefaultRegion), link)
	} else {
		ce.Reply("There is already a conversation with %s: [open it](%s).", number, link)
	}
}

// startChatLogin picks the clinic number a conversation is started from: the one named
// first (its number or login ID), else the conversation room's, else the sender's own
// login, else the only linked number. It replies and returns nil when there is none to
// pick. rest is the arguments after a named clinic number.
func (c *Connector) startChatLogin(ce *commands.Event) (login *bridgev2.UserLogin, rest []string) {
	logins := c.clinicLogins()
	if len(ce.Args) > 1 {
		for _, l := range logins {
			if string(l.ID) == ce.Args[0] {
				return c.usableLogin(ce, l), ce.Args[1:]
			}
			if phone, err := sms.NormalizePhone(ce.Args[0], c.Config.DefaultRegion); err == nil && phone == l.Metadata.(*UserLoginMetadata).Phone {
				return c.usableLogin(ce, l), ce.Args[1:]
			}
		}
	}
	rest = ce.Args
	if ce.Portal != nil && ce.Portal.Receiver != "" {
		if l := c.Bridge.GetCachedUserLoginByID(ce.Portal.Receiver); l != nil {
			return c.usableLogin(ce, l), rest
		}
	}
	if l := ce.User.GetDefaultLogin(); l != nil {
		if _, ok := l.Client.(*Client); ok {
			return c.usableLogin(ce, l), rest
		}
	}
	switch len(logins) {
	case 0:
		ce.Reply("No clinic number is linked yet: an administrator links one with `$cmdprefix login`.")
		return nil, nil
	case 1:
		return c.usableLogin(ce, logins[0]), rest
	}
	numbers := make([]string, len(logins))
	for i, l := range logins {
		numbers[i] = "`" + l.Metadata.(*UserLoginMetadata).Phone + "`"
	}
	slices.Sort(numbers)
	ce.Reply("This clinic texts from several numbers (%s): say which first, e.g. `$cmdprefix start-chat %s <patient number>`.",
		strings.Join(numbers, ", "), strings.Trim(numbers[0], "`"))
	return nil, nil
}

// usableLogin is login when its number can text now; otherwise it replies why not.
func (c *Connector) usableLogin(ce *commands.Event, login *bridgev2.UserLogin) *bridgev2.UserLogin {
	if login.Client == nil || !login.Client.IsLoggedIn() {
		ce.Reply("The clinic number %s is not connected to Twilio just now; ask an administrator.",
			login.Metadata.(*UserLoginMetadata).Phone)
		return nil
	}
	return login
}

// clinicLogins are the linked clinic numbers.
func (c *Connector) clinicLogins() []*bridgev2.UserLogin {
	var logins []*bridgev2.UserLogin
	for _, login := range c.Bridge.GetAllCachedUserLogins() {
		if meta, ok := login.Metadata.(*UserLoginMetadata); ok && meta.Phone != "" {
			if _, ok = login.Client.(*Client); ok {
				logins = append(logins, login)
			}
		}
	}
	return logins
}

// startConversation opens a patient's conversation at a clinic number for a staff member or
// an integration (actor, shown as actorName; via says how, for the audit). A new one is
// audited and its room says who started it; created says whether it is new.
func (c *Connector) startConversation(ctx context.Context, login *bridgev2.UserLogin, patient string, actor database.AuditActor, actorName, via string) (*bridgev2.Portal, bool, error) {
	portal, created, err := c.openConversation(ctx, login, patient)
	if err != nil || !created {
		return portal, created, err
	}
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		return nil, false, err
	}
	if err = c.audited(ctx, convAudit(conv, actor, database.EventConversationStarted, database.OutcomeOK, via), nil); err != nil {
		return nil, false, err
	}
	c.sendNotice(ctx, portal, fmt.Sprintf("%s started this conversation.", actorName))
	return portal, true, nil
}
