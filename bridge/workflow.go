package bridge

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
)

// The clinic workflow (teams, assignment, urgency, after-hours replies, templates,
// scheduled follow-ups, response times) hangs off three hooks: a patient's text reached
// the room, a staff reply reached the patient, and the commands (commands.go). The rules
// are packages workflow and conversation (Responses); these hooks hand the events over.

// now is the time on the connector's one clock (Connector.Clock).
func (c *Connector) now() time.Time {
	return c.Clock.Now()
}

// markWaiting records that the patient waits for a reply, before their text is put into
// the room (conversation.Responses.Waiting).
func (c *Connector) markWaiting(ctx context.Context, loginID, portalID string) {
	c.Responses.Waiting(ctx, loginID, portalID)
}

// onPatientText runs the workflow rules for a patient's text (SMS or secure chat) that
// has just been put into the room. Keywords (STOP, HELP…) do not come here.
func (c *Connector) onPatientText(ctx context.Context, _ *bridgev2.UserLogin, portal *bridgev2.Portal, body string) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.Responses.PatientText(ctx, conv, body)
}

// onStaffReply runs after a staff message reached the patient (by SMS or the secure chat).
func (c *Connector) onStaffReply(ctx context.Context, portal *bridgev2.Portal, sender id.UserID) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.recordStaffReply(ctx, portal, conv, sender)
}

// recordStaffReply ends the patient's wait with the first staff reply and records its time.
func (c *Connector) recordStaffReply(ctx context.Context, _ *bridgev2.Portal, conv *database.Conversation, sender id.UserID) {
	c.Responses.StaffReplied(ctx, conv, sender.String())
}
