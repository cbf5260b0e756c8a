package bridge

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
)

// recordStaffReply ends the patient's wait with the first staff reply and records its time.
func (c *Connector) recordStaffReply(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation, sender id.UserID) {
}
