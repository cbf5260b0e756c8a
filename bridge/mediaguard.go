package bridge

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
)

// guardStaffMedia tells staff, in an encrypted notice, why bridgev2 will refuse their
// attachment before carebridge sees it: bridgev2 checks a message against the room's
// features (file types and sizes carriers deliver by MMS) and reports a refusal only
// through its own notices, which are not encrypted and so are turned off. The check
// mirrors bridgev2's (Portal.checkMessageContentCaps) for what an SMS room declares.
func (c *Connector) guardStaffMedia(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsMessage()
	if content == nil || !content.MsgType.IsMedia() || evt.Sender == c.Bridge.Bot.GetMXID() {
		return
	}
	if _, isGhost := c.Bridge.Matrix.ParseGhostMXID(evt.Sender); isGhost {
		return
	}
	portal, err := c.Bridge.GetPortalByMXID(ctx, evt.RoomID)
	if err != nil || portal == nil {
		return
	}
	login := c.Bridge.GetCachedUserLoginByID(portal.Receiver)
	if login == nil {
		return
	}
	client, ok := login.Client.(*Client)
	if !ok {
		return
	}
	reason := mediaRefusal(client.GetCapabilities(ctx, portal), content)
	if reason == "" {
		return
	}
	log := c.Bridge.Log.With().Str("action", "refuse staff attachment").Stringer("event_id", evt.ID).Logger()
	log.Debug().Str("reason", reason).Msg("Attachment refused before it is bridged")
	// Off the appservice transaction: the notice is a request to the homeserver.
	go c.sendReplyNotice(log.WithContext(c.Bridge.BackgroundCtx), portal, evt.ID, "⚠️ Not sent: "+reason)
}

// mediaRefusal is why an attachment does not fit the room's features ("" when it does).
func mediaRefusal(caps *event.RoomFeatures, content *event.MessageEventContent) string {
	feat, ok := caps.File[content.GetCapMsgType()]
	if !ok {
		return bridgev2.ErrUnsupportedMessageType.Error() + ": only text, images and files can be sent by SMS"
	}
	if content.Info == nil {
		return ""
	}
	if feat.MaxSize != 0 && int64(content.Info.Size) > feat.MaxSize {
		return fmt.Sprintf("%s: %.1f MiB is larger than the maximum of %.1f MiB carriers deliver",
			bridgev2.ErrMediaTooLarge.Error(), float64(content.Info.Size)/1024/1024, float64(feat.MaxSize)/1024/1024)
	}
	if content.Info.MimeType != "" && feat.GetMimeSupport(content.Info.MimeType).Reject() {
		return fmt.Sprintf("%s: carriers do not deliver %s by MMS; send a JPEG, PNG or GIF, or switch to secure mode (%s)",
			bridgev2.ErrUnsupportedMediaType.Error(), content.Info.MimeType, "!sms secure")
	}
	return ""
}
