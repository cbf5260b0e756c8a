package bridge

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
)

// maxSMSLength is Twilio's limit for one message body (it splits it into segments).
const maxSMSLength = 1600

var smsRoomFeatures = &event.RoomFeatures{
	ID:            "org.carebridge.sms.v2",
	MaxTextLength: maxSMSLength,
	File: event.FileFeatureMap{
		event.MsgImage: mmsFeatures,
		event.MsgFile:  mmsFeatures,
		event.MsgVideo: mmsFeatures,
		event.MsgAudio: mmsFeatures,
	},
}

// GetCapabilities is called when a room is created or its features are refreshed: plain
// text up to Twilio's limit and MMS attachments; no edits, deletions or reactions (SMS
// has none).
func (cl *Client) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	return smsRoomFeatures
}
