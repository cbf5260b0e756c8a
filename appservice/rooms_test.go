package appservice_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// fakeBot is the homeserver as the bridge bot sees it: state, members, notices, invites.
type fakeBot struct {
	mu       sync.Mutex
	state    map[string]any // room|type|state key -> content
	members  map[id.RoomID][]appservice.Member
	notices  map[id.RoomID][]string
	invited  map[id.RoomID][]id.UserID
	kicked   map[id.RoomID][]id.UserID
	spaces   []string
	refuse   id.UserID // an invite the homeserver refuses
	failACL  id.RoomID // a room whose server ACL cannot be set
	eventSeq int
}

func newFakeBot() *fakeBot {
	return &fakeBot{state: map[string]any{}, members: map[id.RoomID][]appservice.Member{}, notices: map[id.RoomID][]string{},
		invited: map[id.RoomID][]id.UserID{}, kicked: map[id.RoomID][]id.UserID{}}
}

func stateKey(roomID id.RoomID, evtType event.Type, key string) string {
	return fmt.Sprintf("%s|%s|%s", roomID, evtType.Type, key)
}

func (b *fakeBot) EnsureInvited(_ context.Context, roomID id.RoomID, userID id.UserID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if userID == b.refuse {
		return errors.New("M_FORBIDDEN: user is banned")
	}
	b.invited[roomID] = append(b.invited[roomID], userID)
	return nil
}

func (b *fakeBot) SendState(_ context.Context, roomID id.RoomID, evtType event.Type, key string, content any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if evtType == event.StateServerACL && roomID == b.failACL {
		return errors.New("M_FORBIDDEN")
	}
	b.state[stateKey(roomID, evtType, key)] = content
	return nil
}

func (b *fakeBot) StateEvent(_ context.Context, roomID id.RoomID, evtType event.Type, key string, content any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	got, ok := b.state[stateKey(roomID, evtType, key)]
	if !ok {
		return errors.New("M_NOT_FOUND")
	}
	*content.(*event.PinnedEventsEventContent) = *got.(*event.PinnedEventsEventContent)
	return nil
}

func (b *fakeBot) SendNotice(_ context.Context, roomID id.RoomID, text string) (id.EventID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notices[roomID] = append(b.notices[roomID], text)
	b.eventSeq++
	return id.EventID(fmt.Sprintf("$notice%d", b.eventSeq)), nil
}

func (b *fakeBot) Members(_ context.Context, roomID id.RoomID) ([]appservice.Member, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.members[roomID], nil
}

func (b *fakeBot) Kick(_ context.Context, roomID id.RoomID, userID id.UserID, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kicked[roomID] = append(b.kicked[roomID], userID)
	return nil
}

func (b *fakeBot) CreateSpace(_ context.Context, name, _ string) (id.RoomID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spaces = append(b.spaces, name)
	return id.RoomID(fmt.Sprintf("!space%d:clinic.example", len(b.spaces))), nil
}

func (b *fakeBot) get(roomID id.RoomID, evtType event.Type, key string) any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state[stateKey(roomID, evtType, key)]
}

// fakePortals are bridgev2's portals: each conversation's room, and what masking re-showed.
type fakePortals struct {
	rooms map[database.ConversationKey]id.RoomID
	shown []string
}

func (p *fakePortals) RoomOf(_ context.Context, key database.ConversationKey) (id.RoomID, error) {
	return p.rooms[key], nil
}

func (p *fakePortals) ShowMasking(_ context.Context, conv *database.Conversation) {
	p.shown = append(p.shown, conv.PortalID)
}

type roomsEnv struct {
	rooms   *appservice.Rooms
	bot     *fakeBot
	portals *fakePortals
	db      *database.Database
	cfg     *config.Config
}

const clinicPhone = "+15550001111"

// conversationRoom stores a conversation whose room is set up, and returns its room.
func (e *roomsEnv) conversationRoom(t *testing.T, ctx context.Context, patient string) appservice.Room {
	conv, err := e.db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: "15550001111", PortalID: patient[1:],
		ClinicPhone: clinicPhone, PatientPhone: patient})
	require.NoError(t, err)
	require.NoError(t, e.db.Conversation.SetRoomReady(ctx, conv.LoginID, conv.PortalID))
	key := database.ConversationKey{LoginID: conv.LoginID, PortalID: conv.PortalID}
	room := appservice.Room{ID: id.RoomID("!" + conv.PortalID + ":clinic.example"), Key: key}
	e.portals.rooms[key] = room.ID
	return room
}

func eachDB(t *testing.T, fn func(t *testing.T, ctx context.Context, e *roomsEnv)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))
			cfg := &config.Config{ClinicName: "Riverside Clinic",
				Federation: config.FederationConfig{AllowedServers: []string{"hospital.example"}}}
			bot, portals := newFakeBot(), &fakePortals{rooms: map[database.ConversationKey]id.RoomID{}}
			rooms := &appservice.Rooms{Config: cfg, DB: db, Bot: bot, Portals: portals, ServerName: "clinic.example",
				CommandPrefix: "!sms", FormatPhone: func(e164 string) string { return "formatted " + e164 }}
			fn(t, ctx, &roomsEnv{rooms: rooms, bot: bot, portals: portals, db: db, cfg: cfg})
		})
	}
}

func audited(t *testing.T, ctx context.Context, db *database.Database, room appservice.Room, evt database.AuditEvent) []*database.AuditEntry {
	rows, err := db.Audit.Find(ctx, room.Key.LoginID, room.Key.PortalID, evt)
	require.NoError(t, err)
	return rows
}
