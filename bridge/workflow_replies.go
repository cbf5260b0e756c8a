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
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/workflow"
)

// The automatic answers to a patient's text: the emergency reply and the after-hours
// reply. Both are fixed texts without PHI, so they go by SMS even in secure mode (the
// patient may not have the secure chat open), and never to a number that opted out.

// checkEmergency answers a text containing an emergency phrase and marks it urgent.
func (c *Connector) checkEmergency(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, conv *database.Conversation, body string) {
	phrase := workflow.MatchEmergency(c.Config.Emergency.Phrases, body)
	if phrase == "" {
		return
	}
	log := zerolog.Ctx(ctx).With().Str("action", "emergency reply").Str("portal_id", conv.PortalID).Logger()
	ctx = log.WithContext(ctx)
	if err := c.markUrgent(ctx, portal, conv, database.SystemActor, true); err != nil {
		log.Err(err).Msg("Failed to mark the conversation urgent")
	}
	claimed, release := c.workflow.emergencyReplies.Claim(conv.LoginID+"/"+conv.PortalID, c.now())
	if !claimed {
		log.Debug().Msg("Emergency reply already sent within the interval")
		return
	}
	var outcome string
	var audit database.AuditOutcome
	switch err := c.textPatient(ctx, conv, outbox.KindAutoReply, c.Config.Render(c.Config.Emergency.Reply), ""); {
	case err == nil:
		outcome, audit = "The emergency reply (call 911) was texted to the patient.", database.OutcomeOK
	case conv.OptedOut:
		outcome, audit = "The patient has opted out (STOP): no emergency reply was texted. Call them if you can.", database.OutcomeOptedOut
	default:
		release()
		log.Err(err).Msg("Failed to text the emergency reply")
		outcome, audit = "The emergency reply could not be texted ("+conversation.SendErrorWords(err)+"). Call the patient if you can.", database.OutcomeFailed
	}
	if err := c.audited(ctx, convAudit(conv, database.SystemActor, database.EventEmergencyReplySent, audit, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit the emergency reply")
	}
	c.noticeOnCall(ctx, portal, fmt.Sprintf("🚨 Possible emergency: the patient's message contains “%s”. "+
		"This conversation is marked urgent. %s", phrase, outcome))
}

// checkAfterHours texts the after-hours reply outside business hours (once per closed period).
func (c *Connector) checkAfterHours(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, conv *database.Conversation) {
	log := zerolog.Ctx(ctx).With().Str("action", "after-hours reply").Str("portal_id", conv.PortalID).Logger()
	ctx = log.WithContext(ctx)
	hours, err := workflow.ParseBusinessHours(&c.Config.BusinessHours)
	if err != nil {
		log.Err(err).Msg("Failed to read business hours")
		return
	}
	now := c.now()
	reply := hours.AfterHours(now, c.Config.SecureChat.Language, c.Config.BusinessHours.AfterHoursReply)
	if !reply.Closed {
		return
	}
	claimed, err := c.DB.Conversation.ClaimAfterHours(ctx, conv.LoginID, conv.PortalID, now, reply.ClosedSince)
	if err != nil {
		log.Err(err).Msg("Failed to claim the after-hours reply")
		return
	} else if !claimed {
		log.Debug().Msg("After-hours reply already sent in this closed period")
		return
	}
	text := c.Config.Render(reply.Template)
	if reply.OpensAgain != "" {
		text += " " + reply.OpensAgain
	}
	var outcome string
	var audit database.AuditOutcome
	switch err = c.textPatient(ctx, conv, outbox.KindAutoReply, text, ""); {
	case err == nil:
		outcome, audit = "The after-hours reply was texted to the patient.", database.OutcomeOK
	case conv.OptedOut:
		outcome, audit = "The patient has opted out (STOP): no after-hours reply was texted.", database.OutcomeOptedOut
	default:
		log.Err(err).Msg("Failed to text the after-hours reply")
		if err = c.DB.Conversation.ReleaseAfterHours(ctx, conv.LoginID, conv.PortalID, now, conv.AfterHoursAt); err != nil {
			log.Err(err).Msg("Failed to release the after-hours claim")
		}
		outcome, audit = "The after-hours reply could not be texted; the patient's next message tries again.", database.OutcomeFailed
	}
	if err = c.audited(ctx, convAudit(conv, database.SystemActor, database.EventAfterHoursReplySent, audit, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit the after-hours reply")
	}
	when := ""
	if reply.ForStaff != "" {
		when = " (" + reply.ForStaff + ")"
	}
	c.noticeOnCall(ctx, portal, "🌙 After hours: the patient wrote while the clinic is closed"+when+". "+outcome)
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
