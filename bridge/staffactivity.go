package bridge

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	cbdb "github.com/carebridge/carebridge/database"
)

// Staff reading and typing in a secure conversation are shown on the patient's chat page
// ("Seen by the clinic", "Jane is typing…"); SMS has neither, so SMS conversations get
// nothing.
//
// bridgev2 hands read receipts and typing to the network API of the member's own login
// only, which relayed staff never have: it reaches the interfaces below for the account
// that linked the clinic number. relayStaffActivity, the first handler of both event
// types, takes every other staff member's to the same place. Both come from the
// homeserver's appservice transactions (appservice.ephemeral_events) or, for a homeserver
// that does not push them (Dendrite), from the bot's own /sync (syncStaffActivity).

var (
	_ bridgev2.ReadReceiptHandlingNetworkAPI = (*Client)(nil)
	_ bridgev2.TypingHandlingNetworkAPI      = (*Client)(nil)
)

// HandleMatrixReadReceipt is called by bridgev2 when the clinic number's own account
// sends a read receipt in a conversation room.
func (cl *Client) HandleMatrixReadReceipt(ctx context.Context, msg *bridgev2.MatrixReadReceipt) error {
	cl.Connector.staffRead(ctx, msg.Portal, msg.ExactMessage, msg.ReadUpTo)
	return nil
}

// HandleMatrixTyping is called by bridgev2 when the clinic number's own account starts
// or stops typing in a conversation room.
func (cl *Client) HandleMatrixTyping(ctx context.Context, msg *bridgev2.MatrixTyping) error {
	cl.Connector.staffTyping(ctx, msg.Portal, cl.UserLogin.UserMXID, msg.IsTyping)
	return nil
}

// secureConversation returns the portal's conversation when it is in secure mode.
func (c *Connector) secureConversation(ctx context.Context, portal *bridgev2.Portal) *cbdb.Conversation {
	if c.Secure == nil || portal == nil {
		return nil
	}
	conv, err := c.DB.Conversation.Get(ctx, string(portal.Receiver), string(portal.ID))
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for staff activity")
		return nil
	} else if conv == nil || conv.Mode != cbdb.ModeSecure {
		return nil
	}
	return conv
}

// staffRead marks the patient's messages up to the one read (exact, when the receipt
// is on a bridged message) or sent before readUpTo as seen by the clinic.
func (c *Connector) staffRead(ctx context.Context, portal *bridgev2.Portal, exact *database.Message, readUpTo time.Time) {
	conv := c.secureConversation(ctx, portal)
	if conv == nil {
		return
	}
	var upToID int64
	if exact != nil && exact.Room == portal.PortalKey {
		upToID, _ = strconv.ParseInt(strings.TrimPrefix(string(exact.ID), "secure-"), 10, 64)
	}
	if err := c.Secure.StaffRead(ctx, conv, upToID, readUpTo); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to mark the patient's secure messages seen")
	}
}

// staffTyping shows the patient that a staff member is typing, under their display
// name (the clinic's name when they have none).
func (c *Connector) staffTyping(ctx context.Context, portal *bridgev2.Portal, userID id.UserID, typing bool) {
	conv := c.secureConversation(ctx, portal)
	if conv == nil {
		return
	}
	name := c.Config.ClinicName
	if typing {
		member, err := c.Bridge.Matrix.GetMemberInfo(ctx, portal.MXID, userID)
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to get a staff member's display name")
		} else if member != nil && member.Displayname != "" {
			name = member.Displayname
		}
	}
	c.Secure.StaffTyping(conv, userID.String(), name, typing)
}

// relayStaffActivity is the first handler of read receipts and typing: it takes those of
// staff who reply through the clinic number (no login of their own) to staffRead and
// staffTyping, and leaves the event as it is for bridgev2 (which takes the linking
// account's to the interfaces above).
func (c *Connector) relayStaffActivity(ctx context.Context, evt *event.Event) {
	if c.Secure == nil || evt.RoomID == "" {
		return
	}
	portal, err := c.Bridge.GetPortalByMXID(ctx, evt.RoomID)
	if err != nil || portal == nil {
		return
	}
	relayed := func(userID id.UserID) bool {
		if userID == c.Bridge.Bot.GetMXID() || c.Bridge.IsGhostMXID(userID) {
			return false
		}
		login := c.Bridge.GetCachedUserLoginByID(portal.Receiver)
		return login == nil || login.UserMXID != userID
	}
	switch evt.Type {
	case event.EphemeralEventReceipt:
		for eventID, receipts := range *evt.Content.AsReceipt() {
			for userID, receipt := range receipts[event.ReceiptTypeRead] {
				if !relayed(userID) {
					continue
				}
				exact, err := c.Bridge.DB.Message.GetPartByMXID(ctx, eventID)
				if err != nil {
					zerolog.Ctx(ctx).Err(err).Msg("Failed to look up the message a receipt is on")
				}
				readUpTo := receipt.Timestamp
				if exact != nil {
					readUpTo = exact.Timestamp
				}
				c.staffRead(ctx, portal, exact, readUpTo)
			}
		}
	case event.EphemeralEventTyping:
		conv := c.secureConversation(ctx, portal)
		if conv == nil {
			return
		}
		typing := map[id.UserID]bool{}
		for _, userID := range evt.Content.AsTyping().UserIDs {
			if relayed(userID) {
				typing[userID] = true
				c.staffTyping(ctx, portal, userID, true)
			}
		}
		for _, key := range c.Secure.Typists(conv) {
			if userID := id.UserID(key); !typing[userID] && relayed(userID) {
				c.staffTyping(ctx, portal, userID, false)
			}
		}
	}
}

func (c *Connector) relayStaffActivityFirst(mc *matrix.Connector) {
	mc.EventProcessor.PrependHandler(event.EphemeralEventReceipt, c.relayStaffActivity)
	mc.EventProcessor.PrependHandler(event.EphemeralEventTyping, c.relayStaffActivity)
}

// staffActivityPace is the shortest time between two of the bot's /sync requests for staff
// activity: "Seen" and "typing" reach the patient's page up to this much later.
const staffActivityPace = time.Second

// syncStaffActivity reads receipts and typing in the bot's rooms through its own /sync
// when the homeserver is not asked to push them (appservice.ephemeral_events: false, as
// for Dendrite, which never does), and hands them on as a pushed event would be.
func (c *Connector) syncStaffActivity(ctx context.Context) {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok || mc.Config.AppService.EphemeralEvents {
		return
	}
	log := c.Bridge.Log.With().Str("component", "staff activity sync").Logger()
	ctx = log.WithContext(ctx)
	if mc.Config.Encryption.Appservice {
		// A /sync as the bot's device would take away the to-device messages (room keys)
		// that appservice encryption receives in the homeserver's transactions.
		log.Warn().Msg("appservice.ephemeral_events is false while encryption.appservice is on: staff read " +
			"receipts and typing are not shown to patients; set appservice.ephemeral_events: true")
		return
	}
	none := &mautrix.FilterPart{NotTypes: []event.Type{{Type: "*"}}}
	filter, _ := json.Marshal(&mautrix.Filter{Presence: none, AccountData: none, Room: &mautrix.RoomFilter{
		Ephemeral: &mautrix.FilterPart{Types: []event.Type{event.EphemeralEventReceipt, event.EphemeralEventTyping}},
		State:     none, Timeline: none, AccountData: none,
	}})
	var since string
	for ctx.Err() == nil {
		began := time.Now()
		resp, err := mc.Bot.SyncRequest(ctx, 30000, since, string(filter), false, event.PresenceOffline)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("Failed to read staff receipts and typing from the homeserver, retrying in 5 seconds")
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
			continue
		}
		for roomID, room := range resp.Rooms.Join {
			for _, evt := range room.Ephemeral.Events {
				evt.RoomID = roomID
				evt.Type.Class = event.EphemeralEventType
				evt.Mautrix.EventSource = event.SourceEphemeral
				if err = evt.Content.ParseRaw(evt.Type); err != nil {
					continue
				}
				mc.EventProcessor.Dispatch(ctx, evt)
			}
		}
		since = resp.NextBatch
		// Dendrite answers the long poll at every event in any of the bot's rooms, filtered
		// out or not: unpaced, this /sync took the homeserver's time from staff texts (make
		// bench, SQLite: outbound 22.7/31.2 texts a second at c=8/32, 38.6/42.8 without it).
		select {
		case <-ctx.Done():
		case <-time.After(staffActivityPace - time.Since(began)):
		}
	}
}
