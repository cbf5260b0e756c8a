package bridge

import (
	"context"
	"errors"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Assignment, urgency, closing and the inbox: who owns a conversation, which ones come
// first, and the list staff work through.

// ---- hooks ------------------------------------------------------------------------

// reopenIfClosed reopens a closed conversation when the patient writes again.
func (c *Connector) reopenIfClosed(ctx context.Context, _ *bridgev2.Portal, conv *database.Conversation) {
	if conv.ClosedAt.IsZero() {
		return
	}
	err := c.Conversations.Reopen(ctx, conv, database.PatientActor, "")
	if err != nil && !errors.Is(err, conversation.ErrNotClosed) {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to reopen the conversation")
	}
}

// markWaiting records that the patient waits for a reply (unless an earlier message
// already waits). It runs before the text is put into the room, so that a staff reply
// that follows at once always finds the wait to end.
func (c *Connector) markWaiting(ctx context.Context, loginID, portalID string) {
	if err := c.DB.Conversation.MarkWaiting(ctx, loginID, portalID, c.now()); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record that the patient waits for a reply")
	}
}

// mentionAssignee mentions the conversation's owner on a new patient message, at most
// once per workflow.MentionInterval per conversation.
func (c *Connector) mentionAssignee(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation) {
	if conv.Assignee == "" || portal == nil || portal.MXID == "" {
		return
	}
	if !c.workflow.mentions.Due(conv.LoginID+"/"+conv.PortalID, c.now()) {
		return
	}
	assignee := id.UserID(conv.Assignee)
	name := c.memberName(ctx, portal.MXID, assignee)
	body := fmt.Sprintf("New message from the patient for %s", assignee)
	if name != assignee.String() {
		body = fmt.Sprintf("New message from the patient for %s (%s)", name, assignee)
	}
	_, err := c.Bridge.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{Parsed: &event.MessageEventContent{
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

// roomName is the conversation room's name: the patient's name or number, marked while
// urgent.
func (c *Connector) roomName(ctx context.Context, conv *database.Conversation) (string, error) {
	name, err := c.patientDisplayName(ctx, conv.PatientPhone)
	if err != nil {
		return "", err
	}
	return workflow.RoomName(name, conv.Urgent), nil
}

// memberName is a staff member's display name in the room, or their Matrix ID.
func (c *Connector) memberName(ctx context.Context, roomID id.RoomID, userID id.UserID) string {
	if member, err := c.Bridge.Matrix.GetMemberInfo(ctx, roomID, userID); err == nil && member != nil && member.Displayname != "" {
		return member.Displayname
	}
	return userID.String()
}

// ---- assignment -------------------------------------------------------------------

// setAssignee gives the conversation an owner ("" for none), audited, with a notice.
func (c *Connector) setAssignee(ce *commands.Event, conv *database.Conversation, assignee id.UserID) error {
	ctx, portal, actor := ce.Ctx, ce.Portal, ce.User.MXID
	auditEvent := database.EventAssigned
	if assignee == "" {
		auditEvent = database.EventUnassigned
	}
	err := c.audited(ctx, convAudit(conv, database.StaffActor(actor), auditEvent, database.OutcomeOK, assignee.String()), func(ctx context.Context) error {
		return c.DB.Conversation.SetAssignee(ctx, conv.LoginID, conv.PortalID, assignee.String())
	})
	if err != nil {
		return err
	}
	previous := id.UserID(conv.Assignee)
	conv.Assignee = assignee.String()
	c.updateConversationState(ctx, portal, conv)
	actorName := c.memberName(ctx, portal.MXID, actor)
	var text string
	switch {
	case assignee == "":
		text = fmt.Sprintf("%s unassigned this conversation (it was %s's).", actorName, c.memberName(ctx, portal.MXID, previous))
	case assignee == actor:
		text = fmt.Sprintf("%s took this conversation.", actorName)
	default:
		text = fmt.Sprintf("%s assigned this conversation to %s.", actorName, c.memberName(ctx, portal.MXID, assignee))
	}
	c.sendNotice(ctx, portal, text)
	return nil
}

func fnTake(ce *commands.Event, c *Connector, conv *database.Conversation) {
	if conv.Assignee == ce.User.MXID.String() {
		ce.Reply("This conversation is already yours.")
		return
	}
	if err := c.setAssignee(ce, conv, ce.User.MXID); err != nil {
		ce.Log.Err(err).Msg("Failed to assign the conversation")
		ce.Reply("Failed to assign the conversation; try again.")
	}
}

func fnAssign(ce *commands.Event, c *Connector, conv *database.Conversation) {
	arg := strings.TrimSpace(ce.RawArgs)
	if arg == "" {
		ce.Reply("Usage: `$cmdprefix assign @user:server`, e.g. `$cmdprefix assign @kim:%s`", c.Bridge.Matrix.ServerName())
		return
	}
	assignee := id.UserID(arg)
	if _, _, err := assignee.ParseAndValidateRelaxed(); err != nil || len(strings.Fields(arg)) != 1 {
		ce.Reply("%q is not a Matrix ID: write the staff member's full ID, e.g. `$cmdprefix assign @kim:%s`.",
			arg, c.Bridge.Matrix.ServerName())
		return
	}
	if conv.Assignee == assignee.String() {
		ce.Reply("This conversation is already assigned to %s.", c.memberName(ce.Ctx, ce.Portal.MXID, assignee))
		return
	}
	// Staff of this homeserver who are not in the room yet are invited; others (another
	// organisation, over federation) must be invited by staff first, as a referral.
	member, _ := c.Bridge.Matrix.GetMemberInfo(ce.Ctx, ce.Portal.MXID, assignee)
	inRoom := member != nil && (member.Membership == event.MembershipJoin || member.Membership == event.MembershipInvite)
	if !inRoom {
		if assignee.Homeserver() != c.Bridge.Matrix.ServerName() {
			ce.Reply("%s is not in this room: invite them first, then assign.", assignee)
			return
		}
		if err := c.Bridge.Bot.EnsureInvited(ce.Ctx, ce.Portal.MXID, assignee); err != nil {
			ce.Log.Err(err).Msg("Failed to invite the assignee")
			ce.Reply("%s could not be invited to this room: check the Matrix ID.", assignee)
			return
		}
	}
	if err := c.setAssignee(ce, conv, assignee); err != nil {
		ce.Log.Err(err).Msg("Failed to assign the conversation")
		ce.Reply("Failed to assign the conversation; try again.")
	}
}

func fnUnassign(ce *commands.Event, c *Connector, conv *database.Conversation) {
	if conv.Assignee == "" {
		ce.Reply("This conversation is not assigned to anyone.")
		return
	}
	if err := c.setAssignee(ce, conv, ""); err != nil {
		ce.Log.Err(err).Msg("Failed to unassign the conversation")
		ce.Reply("Failed to unassign the conversation; try again.")
	}
}

// ---- urgency and closing ----------------------------------------------------------

func fnUrgent(ce *commands.Event, c *Connector, conv *database.Conversation) {
	if conv.Urgent {
		ce.Reply("This conversation is already marked urgent.")
		return
	}
	if err := c.Conversations.MarkUrgent(ce.Ctx, conv, database.StaffActor(ce.User.MXID), true); err != nil {
		ce.Log.Err(err).Msg("Failed to mark the conversation urgent")
		ce.Reply("Failed to mark the conversation urgent; try again.")
		return
	}
	c.sendNotice(ce.Ctx, ce.Portal, fmt.Sprintf("🚨 %s marked this conversation urgent.", c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID)))
}

func fnRoutine(ce *commands.Event, c *Connector, conv *database.Conversation) {
	if !conv.Urgent {
		ce.Reply("This conversation is not marked urgent.")
		return
	}
	if err := c.Conversations.MarkUrgent(ce.Ctx, conv, database.StaffActor(ce.User.MXID), false); err != nil {
		ce.Log.Err(err).Msg("Failed to mark the conversation routine")
		ce.Reply("Failed to mark the conversation routine; try again.")
		return
	}
	c.sendNotice(ce.Ctx, ce.Portal, fmt.Sprintf("%s marked this conversation routine (no longer urgent).", c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID)))
}

func fnClose(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.Close(ce.Ctx, conv, database.StaffActor(ce.User.MXID), c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID), c.now())
	switch {
	case errors.Is(err, conversation.ErrAlreadyClosed):
		ce.Reply("This conversation is already closed.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to close the conversation")
		ce.Reply("Failed to close the conversation; try again.")
	}
}

func fnReopen(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.Reopen(ce.Ctx, conv, database.StaffActor(ce.User.MXID), c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID))
	switch {
	case errors.Is(err, conversation.ErrNotClosed):
		ce.Reply("This conversation is not closed.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to reopen the conversation")
		ce.Reply("Failed to reopen the conversation; try again.")
	}
}

// ---- inbox ------------------------------------------------------------------------

// inboxNumbers are the clinic numbers whose conversations a staff member's inbox lists
// (nil: every number; workflow.InboxNumbers).
func (c *Connector) inboxNumbers(user id.UserID) []string {
	return workflow.InboxNumbers(c.Config.Teams, user.String(), slices.Contains(c.Staff.Members(), user))
}

func fnInbox(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	list, total, err := c.DB.Conversation.Inbox(ce.Ctx, c.inboxNumbers(ce.User.MXID), workflow.InboxLimit)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to read the inbox")
		ce.Reply("Failed to read the inbox; try again.")
		return
	}
	if total == 0 {
		ce.Reply("No open conversations.")
		return
	}
	now := c.now()
	var text, rich strings.Builder
	fmt.Fprintf(&text, "Open conversations (%d):\n", total)
	fmt.Fprintf(&rich, "<p>Open conversations (%d):</p><ol>", total)
	for i, conv := range list {
		line := c.inboxLine(ce.Ctx, conv, now)
		fmt.Fprintf(&text, "%d. %s\n", i+1, line.text)
		rich.WriteString("<li>" + line.html + "</li>")
	}
	rich.WriteString("</ol>")
	if more := total - len(list); more > 0 {
		fmt.Fprintf(&text, "+%d more\n", more)
		fmt.Fprintf(&rich, "<p>+%d more</p>", more)
	}
	_, err = ce.Bot.SendMessage(ce.Ctx, ce.OrigRoomID, event.EventMessage, &event.Content{Parsed: &event.MessageEventContent{
		MsgType:       event.MsgNotice,
		Body:          strings.TrimSuffix(text.String(), "\n"),
		Format:        event.FormatHTML,
		FormattedBody: rich.String(),
		// Listing names is not calling anyone.
		Mentions: &event.Mentions{},
	}}, nil)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to send the inbox")
	}
}

type inboxLine struct{ text, html string }

// inboxLine describes one conversation: urgency, patient, owner, wait, and its room.
func (c *Connector) inboxLine(ctx context.Context, conv *database.Conversation, now time.Time) inboxLine {
	patient := conv.PatientName
	if patient == "" {
		patient = sms.FormatPhone(conv.PatientPhone, c.Config.DefaultRegion)
	}
	var roomID id.RoomID
	portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{
		ID: networkid.PortalID(conv.PortalID), Receiver: networkid.UserLoginID(conv.LoginID),
	})
	if err == nil && portal != nil {
		roomID = portal.MXID
	}
	owner := ""
	if conv.Assignee != "" {
		owner = c.memberName(ctx, roomID, id.UserID(conv.Assignee))
	}
	parts := workflow.InboxEntry(conv, patient, owner, now)
	line := inboxLine{text: strings.Join(parts, " · ")}
	escaped := make([]string, len(parts))
	for i, p := range parts {
		escaped[i] = html.EscapeString(p)
	}
	line.html = strings.Join(escaped, " · ")
	if roomID != "" {
		link := roomID.URI(c.Bridge.Matrix.ServerName()).MatrixToURL()
		line.text += " · " + link
		line.html += fmt.Sprintf(` · <a href="%s">open</a>`, html.EscapeString(link))
	}
	return line
}

// workflowTopic is what the room topic adds to the mode (workflow.TopicSuffix).
func (c *Connector) workflowTopic(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation) string {
	owner := ""
	if conv.Assignee != "" {
		owner = c.memberName(ctx, portal.MXID, id.UserID(conv.Assignee))
	}
	return workflow.TopicSuffix(conv, owner)
}
