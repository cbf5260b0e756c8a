package bridge

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// GetChatInfo is called when a conversation room is created or refreshed: a DM between
// the clinic number (the login owner) and the patient's ghost.
func (cl *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	patient := PhoneOf(portal.ID)
	conv, err := cl.Connector.DB.Conversation.Get(ctx, string(portal.Receiver), string(portal.ID))
	if err != nil {
		return nil, err
	} else if conv == nil {
		// A room is made for a stored conversation (openConversation stores it first).
		return nil, fmt.Errorf("conversation %s is not stored", portal.ID)
	}
	// The same look as every later update (an urgent conversation keeps its 🚨).
	look, err := cl.Connector.roomLook(ctx, portal, conv)
	if err != nil {
		return nil, err
	}
	info := cl.Connector.lookInfo(look)
	roomType := database.RoomTypeDM
	ghostID, err := cl.Connector.patientUserID(ctx, patient)
	if err != nil {
		return nil, err
	}
	members := &bridgev2.ChatMemberList{
		IsFull:      true,
		OtherUserID: ghostID,
		MemberMap:   bridgev2.ChatMemberMap{},
	}
	members.MemberMap.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{IsFromMe: true, Sender: MakeClinicUserID(cl.meta().Phone)}})
	members.MemberMap.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: ghostID}})
	info.Type, info.Members = &roomType, members
	return info, nil
}

// GetUserInfo is called for a ghost without a profile. A patient's name is the one staff
// gave, or the number (its last four digits when names are masked); the clinic number's
// own ghost shows the clinic number. An old ghost named by a patient's number (before
// ghost IDs were opaque) gets an empty profile.
//
// The ghost's notifications are turned off as its profile is first filled (silenceGhost).
func (cl *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	phone, err := cl.Connector.patientPhoneOf(ctx, ghost.ID)
	var info *bridgev2.UserInfo
	if err != nil {
		return nil, err
	} else if phone == "" {
		info = cl.Connector.otherGhostInfo(ghost.ID)
	} else if info, err = cl.Connector.patientGhostInfo(ctx, phone); err != nil {
		return nil, err
	}
	info.ExtraUpdates = cl.Connector.silenceGhost
	return info, nil
}

// silenceBot turns the bridge bot's notifications off (appservice.Silence): it is in every
// conversation room. A failure is logged; the bot works as before.
func (c *Connector) silenceBot(ctx context.Context) {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok || mc.Bot == nil {
		return
	}
	if err := appservice.Silence(ctx, mc.Bot); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to turn the bridge bot's notifications off; the homeserver keeps notifications for it")
	}
}

// silenceGhost turns a ghost's notifications off on the homeserver (appservice.Silence);
// a failure is logged and changes nothing else. It stores nothing (false).
func (c *Connector) silenceGhost(ctx context.Context, ghost *bridgev2.Ghost) bool {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok || ghost.Intent == nil {
		return false
	}
	intent := mc.AS.Intent(ghost.Intent.GetMXID())
	err := intent.EnsureRegistered(ctx)
	if err == nil {
		err = appservice.Silence(ctx, intent)
	}
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("ghost", ghost.Intent.GetMXID()).
			Msg("Failed to turn the ghost's notifications off; the homeserver keeps notifications for it")
	}
	return false
}

// patientGhostInfo is the profile of a patient's ghost.
func (c *Connector) patientGhostInfo(ctx context.Context, phone string) (*bridgev2.UserInfo, error) {
	name, err := c.Rooms.PatientName(ctx, phone)
	if err != nil {
		return nil, err
	}
	info := &bridgev2.UserInfo{Name: &name, Identifiers: []string{}}
	if !c.Rooms.Federation().MaskNames {
		// Identifiers can reach the ghost's public profile (matrix.ghost_extra_profile_info).
		info.Identifiers = []string{"tel:" + phone}
	}
	return info, nil
}

// otherGhostInfo is the profile of a ghost that is no patient's: a clinic number's own,
// or an old ghost named by a patient's number, which shows nothing.
func (c *Connector) otherGhostInfo(id networkid.UserID) *bridgev2.UserInfo {
	name := ""
	identifiers := []string{}
	if c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(id)) != nil {
		phone := "+" + string(id)
		name, identifiers = sms.FormatPhone(phone, c.Config.DefaultRegion), []string{"tel:" + phone}
	}
	return &bridgev2.UserInfo{Name: &name, Identifiers: identifiers}
}

var _ bridgev2.PortalBridgeInfoFillingNetwork = (*Connector)(nil)

// FillPortalBridgeInfo keeps the patient's number out of the room's bridge info state
// event, which other servers see: its channel ID is the portal ID (the number) unless
// replaced, here by the patient's opaque ghost ID (empty until the room has it).
func (c *Connector) FillPortalBridgeInfo(portal *bridgev2.Portal, content *event.BridgeEventContent) {
	content.Channel.ID = ""
	if IsPatientID(portal.OtherUserID) {
		content.Channel.ID = string(portal.OtherUserID)
	}
}

// workflowTopic is what the room topic adds to the mode (workflow.TopicSuffix).
func (c *Connector) workflowTopic(ctx context.Context, portal *bridgev2.Portal, conv *cbdb.Conversation) string {
	owner := ""
	if conv.Assignee != "" {
		owner = c.memberName(ctx, portal.MXID, id.UserID(conv.Assignee))
	}
	return workflow.TopicSuffix(conv, owner)
}

// memberName is a staff member's display name in the room, or their Matrix ID.
func (c *Connector) memberName(ctx context.Context, roomID id.RoomID, userID id.UserID) string {
	if member, err := c.Bridge.Matrix.GetMemberInfo(ctx, roomID, userID); err == nil && member != nil && member.Displayname != "" {
		return member.Displayname
	}
	return userID.String()
}
