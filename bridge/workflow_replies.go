package bridge

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"

	"github.com/carebridge/carebridge/database"
)

// checkEmergency answers a text containing an emergency phrase and marks it urgent.
func (c *Connector) checkEmergency(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, conv *database.Conversation, body string) {
}

// checkAfterHours texts the after-hours reply outside business hours (once per closed period).
func (c *Connector) checkAfterHours(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, conv *database.Conversation) {
}
