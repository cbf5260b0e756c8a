package bridge

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

var smsRoomFeatures = &event.RoomFeatures{
	ID:            "org.carebridge.sms.v2",
	MaxTextLength: sms.MaxBodyChars,
	File: event.FileFeatureMap{
		event.MsgImage: mmsFeatures,
		event.MsgFile:  mmsFeatures,
		event.MsgVideo: mmsFeatures,
		event.MsgAudio: mmsFeatures,
	},
}

// secureRoomFeatures: in secure mode nothing goes by SMS, so texts and files are bounded
// by the web chat, not by carriers.
func (c *Connector) secureRoomFeatures() *event.RoomFeatures {
	files := &event.FileFeatures{
		MimeTypes: map[string]event.CapabilitySupportLevel{"*/*": event.CapLevelFullySupported},
		Caption:   event.CapLevelFullySupported,
		MaxSize:   int64(c.Config.SecureChat.MaxUploadMB) << 20,
	}
	return &event.RoomFeatures{
		ID:            "org.carebridge.secure.v1",
		MaxTextLength: 5000,
		File: event.FileFeatureMap{
			event.MsgImage: files,
			event.MsgFile:  files,
			event.MsgVideo: files,
			event.MsgAudio: files,
		},
	}
}

// GetCapabilities is called for each staff message and when a room's features are
// refreshed: in SMS mode plain text up to Twilio's limit and MMS attachments, in secure
// mode what the web chat takes; never edits, deletions or reactions (SMS has none).
func (cl *Client) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	conv, err := cl.Connector.DB.Conversation.Get(ctx, string(cl.UserLogin.ID), string(portal.ID))
	if err == nil && conv != nil && conv.Mode == database.ModeSecure {
		return cl.Connector.secureRoomFeatures()
	}
	return smsRoomFeatures
}
