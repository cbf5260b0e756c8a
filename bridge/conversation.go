package bridge

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
)

// newConversations builds the conversation service over the bridge's rooms.
func (c *Connector) newConversations() *conversation.Service {
	svc := &conversation.Service{Config: &c.Config, DB: c.DB, Rooms: conversationRooms{c}, Texts: c.Outbox,
		Secure: c.Secure, Events: conversationRooms{c}, BotMXID: c.Bridge.Bot.GetMXID().String()}
	c.Alerter = &conversation.Alerter{S: svc, Now: c.now}
	c.AutoReplies = &conversation.AutoReplies{S: svc, Now: c.now}
	svc.Alerts = c.Alerter
	return svc
}

// conversationRooms is a conversation's room, as the conversation service sees it.
type conversationRooms struct{ c *Connector }

var (
	_ conversation.Rooms     = conversationRooms{}
	_ conversation.Lifecycle = conversationRooms{}
	_ conversation.Events    = conversationRooms{}
)

// OptedOut hands an opt-out or opt-in to the integration API's events, when it is on.
func (r conversationRooms) OptedOut(ctx context.Context, conv *database.Conversation, optedOut bool) {
	if r.c.API != nil {
		r.c.API.OptedOut(ctx, conv, optedOut)
	}
}

// portal is the conversation's portal, or nil (logged) when it has no room.
func (r conversationRooms) portal(ctx context.Context, conv *database.Conversation) *bridgev2.Portal {
	portal, err := r.c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(conv.PortalID),
		Receiver: networkid.UserLoginID(conv.LoginID)})
	if err != nil || portal == nil || portal.MXID == "" {
		log := r.c.Bridge.Log.With().Str("portal_id", conv.PortalID).Logger()
		log.Err(err).Msg("The conversation has no room")
		return nil
	}
	return portal
}

// roomID is the conversation's room, or "" (logged) when it has none.
func (r conversationRooms) roomID(ctx context.Context, conv *database.Conversation) id.RoomID {
	if portal := r.portal(ctx, conv); portal != nil {
		return portal.MXID
	}
	return ""
}

func (r conversationRooms) Notice(ctx context.Context, conv *database.Conversation, text string) string {
	if portal := r.portal(ctx, conv); portal != nil {
		return r.c.sendNotice(ctx, portal, text).String()
	}
	return ""
}

func (r conversationRooms) StaffName(ctx context.Context, conv *database.Conversation, userID string) string {
	portal, _ := r.c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(conv.PortalID),
		Receiver: networkid.UserLoginID(conv.LoginID)})
	return r.c.staffName(ctx, portal, id.UserID(userID))
}

func (r conversationRooms) ShowState(ctx context.Context, conv *database.Conversation) {
	r.c.updateConversationState(ctx, r.portal(ctx, conv), conv)
}

func (r conversationRooms) ShowMode(ctx context.Context, conv *database.Conversation) {
	portal := r.portal(ctx, conv)
	if portal == nil {
		return
	}
	if login := r.c.Bridge.GetCachedUserLoginByID(portal.Receiver); login != nil {
		portal.UpdateCapabilities(ctx, login, false)
	}
}

func (r conversationRooms) ShowPatientName(ctx context.Context, conv *database.Conversation, name string) error {
	portal := r.portal(ctx, conv)
	if portal == nil {
		return fmt.Errorf("conversation %s has no room", conv.PortalID)
	}
	return r.c.showPatientName(ctx, portal, conv.PatientPhone, name)
}

// Closed moves the room last in its team spaces and tells the integrations.
func (r conversationRooms) Closed(ctx context.Context, conv *database.Conversation, actor database.AuditActor) {
	r.c.Rooms.UpdateSpaceOrder(ctx, r.roomID(ctx, conv), conv)
	if r.c.API != nil {
		r.c.API.ConversationClosed(ctx, conv, actor.String())
	}
}

// UrgencyChanged moves the room to its place in its team spaces.
func (r conversationRooms) UrgencyChanged(ctx context.Context, conv *database.Conversation) {
	r.c.Rooms.UpdateSpaceOrder(ctx, r.roomID(ctx, conv), conv)
}

// Reopened moves the room back among the open ones in its team spaces.
func (r conversationRooms) Reopened(ctx context.Context, conv *database.Conversation, _ database.AuditActor) {
	r.c.Rooms.UpdateSpaceOrder(ctx, r.roomID(ctx, conv), conv)
}
