package bridge

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// How a room looks and who is in it is decided in package appservice; this is the bridge
// bot and bridgev2's portals it does that through.

// newRooms builds the room logic over the bridge bot (Init: it guards member events from
// the first transaction on).
func (c *Connector) newRooms(br *bridgev2.Bridge) *appservice.Rooms {
	return &appservice.Rooms{Config: &c.Config, DB: c.DB, Bot: roomBot{c}, Portals: roomBot{c},
		ServerName: br.Matrix.ServerName(), CommandPrefix: br.Config.CommandPrefix,
		FormatPhone: func(e164 string) string { return sms.FormatPhone(e164, c.Config.DefaultRegion) }}
}

// roomOf is a portal's room as package appservice names it.
func roomOf(portal *bridgev2.Portal) appservice.Room {
	return appservice.Room{ID: portal.MXID, Key: database.ConversationKey{LoginID: string(portal.Receiver), PortalID: string(portal.ID)}}
}

// roomBot is the bridge bot (bridgev2's bot intent, which encrypts in encrypted rooms) and
// bridgev2's portals, as package appservice uses them.
type roomBot struct{ c *Connector }

var (
	_ appservice.Bot     = roomBot{}
	_ appservice.Portals = roomBot{}
)

// errNoMatrixConnector is returned where only mautrix's own Matrix connector can answer.
var errNoMatrixConnector = errors.New("the bridge does not run on mautrix's Matrix connector")

func (b roomBot) EnsureInvited(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	return b.c.Bridge.Bot.EnsureInvited(ctx, roomID, userID)
}

func (b roomBot) SendState(ctx context.Context, roomID id.RoomID, evtType event.Type, stateKey string, content any) error {
	_, err := b.c.Bridge.Bot.SendState(ctx, roomID, evtType, stateKey, &event.Content{Parsed: content}, time.Time{})
	return err
}

func (b roomBot) StateEvent(ctx context.Context, roomID id.RoomID, evtType event.Type, stateKey string, content any) error {
	mc, ok := b.c.Bridge.Matrix.(*matrix.Connector)
	if !ok {
		return errNoMatrixConnector
	}
	return mc.Bot.StateEvent(ctx, roomID, evtType, stateKey, content)
}

func (b roomBot) SendNotice(ctx context.Context, roomID id.RoomID, text string) (id.EventID, error) {
	return b.c.sendRoomNotice(ctx, roomID, "", text)
}

func (b roomBot) Members(ctx context.Context, roomID id.RoomID) ([]appservice.Member, error) {
	mc, ok := b.c.Bridge.Matrix.(*matrix.Connector)
	if !ok {
		return nil, nil
	}
	resp, err := mc.Bot.Members(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var members []appservice.Member
	for _, evt := range resp.Chunk {
		if evt.StateKey != nil {
			members = append(members, appservice.Member{UserID: id.UserID(*evt.StateKey), Membership: evt.Content.AsMember().Membership})
		}
	}
	return members, nil
}

func (b roomBot) Kick(ctx context.Context, roomID id.RoomID, userID id.UserID, reason string) error {
	mc, ok := b.c.Bridge.Matrix.(*matrix.Connector)
	if !ok {
		return errNoMatrixConnector
	}
	_, err := mc.Bot.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: userID, Reason: reason})
	return err
}

func (b roomBot) CreateSpace(ctx context.Context, name, topic string) (id.RoomID, error) {
	return b.c.Bridge.Bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility:      "private",
		Preset:          "private_chat",
		Name:            name,
		Topic:           topic,
		CreationContent: map[string]any{"type": event.RoomTypeSpace},
	})
}

func (b roomBot) RoomOf(ctx context.Context, key database.ConversationKey) (id.RoomID, error) {
	portal, err := b.c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(key.PortalID), Receiver: networkid.UserLoginID(key.LoginID)})
	if err != nil || portal == nil {
		return "", err
	}
	return portal.MXID, nil
}

// ShowMasking refreshes, through bridgev2, what masking changes: the bridge info, the
// room's name and topic, and the patient ghost's profile.
func (b roomBot) ShowMasking(ctx context.Context, conv *database.Conversation) {
	c := b.c
	portal := conversationRooms{c}.portal(ctx, conv)
	if portal == nil {
		return
	}
	portal.UpdateBridgeInfo(ctx)
	c.updateConversationState(ctx, portal, conv)
	if ghost, err := c.patientGhost(ctx, conv.PatientPhone); err == nil {
		if info, err := c.patientGhostInfo(ctx, conv.PatientPhone); err == nil {
			ghost.UpdateInfo(ctx, info)
		}
	}
}
