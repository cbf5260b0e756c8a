package bridge

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
)

// maxSMSLength is Twilio's limit for one message body (it splits it into segments).
const maxSMSLength = 1600

var smsRoomFeatures = &event.RoomFeatures{
	ID:            "org.carebridge.sms.v1",
	MaxTextLength: maxSMSLength,
}

// GetCapabilities is called when a room is created or its features are refreshed: plain
// text up to Twilio's limit; no edits, deletions or reactions (SMS has none).
func (cl *Client) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	return smsRoomFeatures
}
