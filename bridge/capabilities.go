package bridge

import (
	"context"
	"sync"

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
//
// For a staff message, the conversation read here is kept for HandleMatrixMessage, which
// bridgev2 calls next for the same event (matched by the event in ctx): one read, not two.
func (cl *Client) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	conv, err := cl.Connector.DB.Conversation.Get(ctx, string(cl.UserLogin.ID), string(portal.ID))
	if evt := bridgev2.GetMatrixEventFromContext(ctx); err == nil && evt != nil && evt.Type == event.EventMessage {
		cl.Connector.eventConvs.put(evt, conv)
	}
	if err == nil && conv != nil && conv.Mode == database.ModeSecure {
		return cl.Connector.secureRoomFeatures()
	}
	return smsRoomFeatures
}

// eventConvSlots is how many events' conversations are kept between GetCapabilities and
// HandleMatrixMessage: more than the events handled at once (one per portal queue), so
// a kept one is taken before it is overwritten; one overwritten is read again.
const eventConvSlots = 32

// eventConvs hands the conversation read for a Matrix event's room features to the
// handling of the same event.
type eventConvs struct {
	mu    sync.Mutex
	slots [eventConvSlots]struct {
		evt  *event.Event
		conv *database.Conversation
	}
	next int
}

func (m *eventConvs) put(evt *event.Event, conv *database.Conversation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slots[m.next].evt, m.slots[m.next].conv = evt, conv
	m.next = (m.next + 1) % eventConvSlots
}

// take returns (once) the conversation kept for evt; ok is false when none is (then it
// must be read).
func (m *eventConvs) take(evt *event.Event) (conv *database.Conversation, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.slots {
		if slot := &m.slots[i]; slot.evt == evt && evt != nil {
			conv = slot.conv
			slot.evt, slot.conv = nil, nil
			return conv, true
		}
	}
	return nil, false
}
