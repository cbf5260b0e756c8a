package bridge

import (
	"context"
	"fmt"
	"html"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
)

// The room side of the automatic answers to a patient's text (conversation.AutoReplies):
// notices that mention the on-call staff.

var _ conversation.OnCall = conversationRooms{}

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
