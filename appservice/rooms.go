package appservice

import (
	"context"
	"sync"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// Bot is the bridge bot on the homeserver, as the room logic uses it. The bridge implements
// it over bridgev2's bot intent; tests use a fake.
type Bot interface {
	Inviter
	// SendState sets a state event of a room.
	SendState(ctx context.Context, roomID id.RoomID, evtType event.Type, stateKey string, content any) error
	// StateEvent reads a state event of a room into content.
	StateEvent(ctx context.Context, roomID id.RoomID, evtType event.Type, stateKey string, content any) error
	// SendNotice posts an m.notice, end-to-end encrypted in an encrypted room.
	SendNotice(ctx context.Context, roomID id.RoomID, text string) (id.EventID, error)
	// Members returns everyone the room knows of, with their membership.
	Members(ctx context.Context, roomID id.RoomID) ([]Member, error)
	// Kick removes a member from a room, with a reason they are shown.
	Kick(ctx context.Context, roomID id.RoomID, userID id.UserID, reason string) error
	// CreateSpace creates a private space owned by the bot.
	CreateSpace(ctx context.Context, name, topic string) (id.RoomID, error)
}

// Member is someone a room knows of, and their membership.
type Member struct {
	UserID     id.UserID
	Membership event.Membership
}

// Portals is what the room logic needs of bridgev2's portals and ghosts, which keep the
// names and topics they set and must not go stale.
type Portals interface {
	// RoomOf returns a conversation's room ("" while it has none).
	RoomOf(ctx context.Context, key database.ConversationKey) (id.RoomID, error)
	// ShowMasking shows the conversation again after privacy.mask_room_names was turned on
	// or off: the room's name, topic and bridge info, and the patient's profile.
	ShowMasking(ctx context.Context, conv *database.Conversation)
}

// Rooms decides how conversation rooms look and who is in them, and makes it so through
// the bot: the federation allow-list (server ACL, the membership guard, referrals), the
// masking of names and the pinned patient notice, and the teams' spaces.
type Rooms struct {
	Config *config.Config
	DB     *database.Database
	Bot    Bot
	// Portals is set by the bridge; nil where only the room's own state is handled.
	Portals Portals
	// ServerName is the clinic's homeserver's server name.
	ServerName string
	// FormatPhone writes a number as staff know it (the clinic's region).
	FormatPhone func(e164 string) string
	// CommandPrefix is how staff call the bridge's commands ("!sms").
	CommandPrefix string

	// teamSpaceLock makes two conversations starting at once create a team's space once.
	teamSpaceLock sync.Mutex
	// teamSpaceChecked holds the teams whose space members were invited by this process,
	// so that members added to the config are invited once after a restart.
	teamSpaceChecked sync.Map
}

// Federation is the clinic's federation policy as the config says now.
func (r *Rooms) Federation() Federation {
	return Federation{ServerName: r.ServerName, Allowed: r.Config.Federation.AllowedHosts(),
		MaskNames: r.Config.Privacy.MaskRoomNames, FormatPhone: r.FormatPhone}
}
