package bridge

import (
	"context"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// The conversation service (package conversation) decides what a conversation does; this
// file is the bridge under it: the rooms it posts to (conversationRooms) and the hooks
// that hand it the bridge's events — a patient's text reached the room, a staff reply
// reached the patient, a carrier keyword came in. The clinic rules themselves are
// packages workflow and conversation (Responses, AutoReplies, Alerter).

// now is the time on the connector's one clock (Connector.Clock).
func (c *Connector) now() time.Time {
	return c.Clock.Now()
}

// onPatientText runs the workflow rules for a patient's text (SMS or secure chat) that
// has just been put into the room. Keywords (STOP, HELP…) do not come here.
func (c *Connector) onPatientText(ctx context.Context, portal *bridgev2.Portal, body string) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.Responses.PatientText(ctx, conv, body)
}

// onStaffReply runs after a staff message reached the patient (by SMS or the secure
// chat): the first staff reply ends the patient's wait and its time is recorded.
func (c *Connector) onStaffReply(ctx context.Context, portal *bridgev2.Portal, sender id.UserID) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.Responses.StaffReplied(ctx, conv, sender.String())
}

// handleKeyword acts on a carrier keyword (STOP, START, HELP and synonyms) after the
// patient's text is in the room (conversation.Service.Keyword).
func (c *Connector) handleKeyword(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, in *sms.Inbound) error {
	keyword := sms.ParseKeyword(in.Body)
	if keyword == sms.KeywordNone || len(in.Media) > 0 {
		return nil
	}
	conv, err := c.DB.Conversation.Get(ctx, string(login.ID), string(portal.ID))
	if err != nil || conv == nil {
		return fmt.Errorf("failed to read conversation for keyword: %w", err)
	}
	return c.Conversations.Keyword(ctx, conv, keyword, in.Body, in.OptOutType != "")
}

// sendNotice posts a bridge notice (m.notice from the bridge bot, encrypted in encrypted
// rooms) in a conversation room.
func (c *Connector) sendNotice(ctx context.Context, portal *bridgev2.Portal, text string) id.EventID {
	return c.sendReplyNotice(ctx, portal, "", text)
}

// newConversations builds the conversation service over the bridge's rooms.
func (c *Connector) newConversations() *conversation.Service {
	svc := &conversation.Service{Config: &c.Config, DB: c.DB, Rooms: conversationRooms{c}, Texts: c.Outbox,
		Secure: c.Secure, Events: conversationRooms{c}, BotMXID: c.Bridge.Bot.GetMXID().String()}
	c.Alerter = &conversation.Alerter{S: svc, Now: c.now}
	c.AutoReplies = &conversation.AutoReplies{S: svc, Now: c.now}
	c.Responses = &conversation.Responses{S: svc, Replies: c.AutoReplies, Now: c.now, FirstReply: c.metrics.FirstReply}
	svc.Alerts = c.Alerter
	return svc
}

// conversationRooms is a conversation's room, as the conversation service sees it.
type conversationRooms struct{ c *Connector }

var (
	_ conversation.Rooms     = conversationRooms{}
	_ conversation.Lifecycle = conversationRooms{}
	_ conversation.Events    = conversationRooms{}
	_ conversation.Mentioner = conversationRooms{}
	_ conversation.OnCall    = conversationRooms{}
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

// existing is the conversation's portal, or nil when it has none (not logged).
func (r conversationRooms) existing(ctx context.Context, conv *database.Conversation) *bridgev2.Portal {
	portal, err := r.c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(conv.PortalID),
		Receiver: networkid.UserLoginID(conv.LoginID)})
	if err != nil {
		return nil
	}
	return portal
}

// StaffName is the staff member's display name in the room, or their user name as relayed
// messages show it (MemberName, for staff, falls back to the full Matrix ID, which
// patients need not see).
func (r conversationRooms) StaffName(ctx context.Context, conv *database.Conversation, userID string) string {
	user := id.UserID(userID)
	if portal := r.existing(ctx, conv); portal != nil && portal.MXID != "" {
		if member, err := r.c.Bridge.Matrix.GetMemberInfo(ctx, portal.MXID, user); err == nil && member != nil && member.Displayname != "" {
			return member.Displayname
		}
	}
	return user.Localpart()
}

func (r conversationRooms) MemberName(ctx context.Context, conv *database.Conversation, userID string) string {
	var roomID id.RoomID
	if portal := r.existing(ctx, conv); portal != nil {
		roomID = portal.MXID
	}
	return r.c.memberName(ctx, roomID, id.UserID(userID))
}

func (r conversationRooms) Link(ctx context.Context, conv *database.Conversation) string {
	portal := r.existing(ctx, conv)
	if portal == nil || portal.MXID == "" {
		return ""
	}
	return portal.MXID.URI(r.c.Bridge.Matrix.ServerName()).MatrixToURL()
}

// MentionAssignee mentions the conversation's owner on a new patient message.
func (r conversationRooms) MentionAssignee(ctx context.Context, conv *database.Conversation) {
	portal := r.portal(ctx, conv)
	if portal == nil {
		return
	}
	assignee := id.UserID(conv.Assignee)
	name := r.c.memberName(ctx, portal.MXID, assignee)
	body := fmt.Sprintf("New message from the patient for %s", assignee)
	if name != assignee.String() {
		body = fmt.Sprintf("New message from the patient for %s (%s)", name, assignee)
	}
	_, err := r.c.Bridge.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{Parsed: &event.MessageEventContent{
		MsgType: event.MsgNotice,
		Body:    body,
		Format:  event.FormatHTML,
		FormattedBody: fmt.Sprintf(`New message from the patient for <a href="%s">%s</a>`,
			html.EscapeString(assignee.URI().MatrixToURL()), html.EscapeString(name)),
		Mentions: &event.Mentions{UserIDs: []id.UserID{assignee}},
	}}, nil)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to mention the assignee")
	}
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

// showPatientName shows a stored patient name: on the ghost and as the room name, or,
// with privacy.mask_room_names (names travel in clear to other servers), only in the
// pinned, end-to-end encrypted notice.
func (c *Connector) showPatientName(ctx context.Context, portal *bridgev2.Portal, phone, name string) error {
	if c.Rooms.Federation().MaskNames {
		return c.Rooms.PinPatientNotice(ctx, roomOf(portal), phone)
	}
	ghost, err := c.patientGhost(ctx, phone)
	if err != nil {
		return err
	}
	ghost.UpdateInfo(ctx, &bridgev2.UserInfo{Name: &name})
	roomName := name
	if conv, err := c.conversationOf(ctx, portal); err == nil {
		if look, err := c.roomLook(ctx, portal, conv); err == nil {
			roomName = look.Name
		}
	}
	portal.UpdateInfo(ctx, &bridgev2.ChatInfo{Name: &roomName}, nil, nil, time.Time{})
	return nil
}

// NoticeOnCall posts a notice that mentions the on-call staff (m.mentions and their IDs
// in the body, so every client notifies them).
func (r conversationRooms) NoticeOnCall(ctx context.Context, conv *database.Conversation, text string) {
	if portal := r.portal(ctx, conv); portal != nil {
		r.c.noticeOnCall(ctx, portal, text)
	}
}

// noticeOnCall posts a notice that mentions the on-call staff (m.mentions and their IDs
// in the body, so every client notifies them).
func (c *Connector) noticeOnCall(ctx context.Context, portal *bridgev2.Portal, text string) {
	_, err := c.Bridge.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{
		Parsed: mentionNotice(text, c.Config.OnCall),
	}, nil)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to send notice to conversation room")
	}
}

// mentionNotice is a notice ending with "On call: @a:server @b:server" as pills.
func mentionNotice(text string, onCall []string) *event.MessageEventContent {
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text, Mentions: &event.Mentions{}}
	if len(onCall) == 0 {
		return content
	}
	pills := make([]string, 0, len(onCall))
	for _, mxid := range onCall {
		userID := id.UserID(mxid)
		content.Mentions.UserIDs = append(content.Mentions.UserIDs, userID)
		pills = append(pills, fmt.Sprintf(`<a href="%s">%s</a>`, html.EscapeString(userID.URI().MatrixToURL()), html.EscapeString(mxid)))
	}
	content.Body = text + " On call: " + strings.Join(onCall, " ")
	content.Format = event.FormatHTML
	content.FormattedBody = html.EscapeString(text) + " On call: " + strings.Join(pills, " ")
	return content
}
