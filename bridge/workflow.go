package bridge

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/workflow"
)

// The clinic workflow (teams, assignment, urgency, after-hours replies, templates,
// scheduled follow-ups, response times) hangs off three hooks: a patient's text reached
// the room, a staff reply reached the patient, and the commands (commands.go). The rules
// are package workflow; this side sends the notices and changes the rooms.

// workflowState is what the workflow remembers in this process.
type workflowState struct {
	mentions workflow.Mentions
}

// now is the time on the connector's one clock (Connector.Clock).
func (c *Connector) now() time.Time {
	return c.Clock.Now()
}

// onPatientText runs the workflow rules for a patient's text (SMS or secure chat) that
// has just been put into the room. Keywords (STOP, HELP…) do not come here.
func (c *Connector) onPatientText(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, body string) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.reopenIfClosed(ctx, portal, conv)
	c.AutoReplies.Emergency(ctx, conv, body)
	c.AutoReplies.AfterHours(ctx, conv)
	c.mentionAssignee(ctx, portal, conv)
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
