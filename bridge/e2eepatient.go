//go:build e2eepatient

package bridge

// The spike of issue 18 (E2EE into the patient's browser) wired into the bridge, in builds
// with the e2eepatient tag only: the appservice's transactions go through securechat/e2ee's
// TransactionTee (to-device events, device lists, key counts and the secure room's timeline
// filed for patient browser devices), secure-room events are then kept from bridgev2 (the
// bot is not in those rooms and must not try to decrypt them), the proxy and the events
// endpoint are served under the secure chat's session, and `!sms e2ee-room` makes a
// conversation's secure room. Everything is in memory: a restart forgets the secure rooms.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/securechat/e2ee"
)

// E2EEPathPrefix is where the patient page is (E2EEPathPrefix + "page", its assets under
// E2EEPathPrefix + "assets/") and where it reaches its Matrix proxy
// (E2EEPathPrefix + "_matrix/client/…") and its events endpoint (E2EEPathPrefix + "events").
const E2EEPathPrefix = "/_carebridge/e2ee/"

// E2EEWasmDirEnv names matrix-sdk-crypto-wasm's pkg folder (the bindings and the .wasm the
// page loads; e2ee.WasmFiles), as npm installs it. The tagged build does not start without it.
// An environment variable rather than a config option: the network config is shared by every
// build, and a key that only this spike reads would show in the default build's example config.
const E2EEWasmDirEnv = "CAREBRIDGE_E2EE_WASM_DIR"

// e2eePatientLocalpartPrefix starts every patient-web user's localpart. It is in the
// appservice's user namespace (the ghosts' sms_ prefix) so that the appservice may create and
// masquerade as it; the rest is random, never the phone number.
const e2eePatientLocalpartPrefix = "sms_pw_"

// securePatient is one conversation's patient-web user, its one browser device (the spike
// makes one per room), its secure room and the proxy serving that device.
type securePatient struct {
	user   id.UserID
	device id.DeviceID
	room   id.RoomID
	proxy  *e2ee.Proxy
	events http.Handler
}

// e2eePatients is the bridge's side of the spike: the inbox and the secure rooms, by
// conversation (login ID and portal ID) and by room.
type e2eePatients struct {
	c     *Connector
	mc    *matrix.Connector
	inbox *e2ee.Inbox
	page  *e2ee.Page // set by startE2EEPatient

	mu     sync.Mutex
	byConv map[[2]string]*securePatient
	byUser map[id.UserID]*securePatient
	rooms  map[id.RoomID]bool
}

// initE2EEPatient installs the spike on the Matrix connector (Init, before the appservice's
// HTTP server starts): the tee and the secure-room filter on every transaction, the
// patient routes and the e2ee-room command.
func (c *Connector) initE2EEPatient(mc *matrix.Connector) {
	if mc == nil || mc.AS == nil {
		return
	}
	p := &e2eePatients{c: c, mc: mc, byConv: map[[2]string]*securePatient{}, byUser: map[id.UserID]*securePatient{},
		rooms: map[id.RoomID]bool{}}
	inbox, err := e2ee.NewInbox(e2ee.InboxConfig{Members: p.members})
	if err != nil {
		c.Bridge.Log.Err(err).Msg("The e2eepatient spike is off: no inbox")
		return
	}
	p.inbox = inbox
	hsToken := mc.AS.Registration.ServerToken
	// The tee files first (it needs the secure rooms' events), then the filter hides those
	// events from bridgev2. Both go in front of the list (ApplyMiddleware makes the first the
	// outermost): carebridge's holdTransactions (portalqueue.go) takes the room events out of
	// the transaction and dispatches them itself, so a middleware after it never sees them.
	mc.AS.Middleware = append([]exhttp.Middleware{e2ee.TransactionTee(inbox, hsToken), p.hideSecureRooms()},
		mc.AS.Middleware...)
	mc.AS.Router.Handle(E2EEPathPrefix, p.sessionHandler())
	if proc, ok := c.Bridge.Commands.(*commands.Processor); ok {
		proc.AddHandlers(p.command())
	}
	c.e2ee = p
	c.Bridge.Log.Warn().Msg("⚠ Built with the e2eepatient spike (issue 18): secure rooms are kept in memory only")
}

// startE2EEPatient prepares the patient page (Start, before anything is served past the
// appservice's API): matrix-sdk-crypto-wasm's files from E2EEWasmDirEnv, hashed and gzipped.
// A folder not given or missing a file stops the bridge, saying what to set.
func (c *Connector) startE2EEPatient() error {
	if c.e2ee == nil {
		return nil
	}
	dir := os.Getenv(E2EEWasmDirEnv)
	page, err := e2ee.NewPage(e2ee.PageConfig{WasmDir: dir, Base: E2EEPathPrefix,
		ProxyBase: strings.TrimSuffix(E2EEPathPrefix, "/"), EventsPath: E2EEPathPrefix + "events"})
	if err != nil {
		return fmt.Errorf("the e2eepatient build serves the patient page and needs %s set to "+
			"@matrix-org/matrix-sdk-crypto-wasm's pkg folder (holding %s; %q given): %w",
			E2EEWasmDirEnv, strings.Join(e2ee.WasmFiles, " and "), dir, err)
	}
	c.e2ee.page = page
	return nil
}

// codePagePreloads are the patient page's assets for the secure chat's code page to preload
// (securechat.WebOptions.CodePagePreloads): the patient waits there for the texted code and
// types it, tens of seconds in which the 2.1 MB of gzipped wasm come down, so the page after
// it finds them in the HTTP cache (docs/e2ee-to-the-patient.md, step 5: 14.1 s on Slow 4G
// without). The assets need no session and are the same for every patient. Not on the link
// page: link previewers and scanners fetch it, and the patient only taps a button there.
func (c *Connector) codePagePreloads() []securechat.Preload {
	if c.e2ee == nil || c.e2ee.page == nil {
		return nil
	}
	pg := c.e2ee.page
	return []securechat.Preload{
		{URL: pg.Module.URL, Integrity: pg.Module.Integrity, Module: true},
		{URL: pg.Core.URL, Integrity: pg.Core.Integrity, Module: true},
		{URL: pg.Bindings.URL, Integrity: pg.Bindings.Integrity, Module: true},
		{URL: pg.Wasm.URL, Integrity: pg.Wasm.Integrity},
	}
}

// members are a secure room's joined members, read from the homeserver as its patient-web
// user (the bot is not in the room).
func (p *e2eePatients) members(ctx context.Context, patient id.UserID) ([]id.UserID, error) {
	p.mu.Lock()
	sp := p.byUser[patient]
	p.mu.Unlock()
	if sp == nil || sp.room == "" {
		return []id.UserID{patient}, nil
	}
	resp, err := p.mc.AS.Intent(patient).JoinedMembers(ctx, sp.room)
	if err != nil {
		return nil, err
	}
	return slices.Collect(maps.Keys(resp.Joined)), nil
}

func (p *e2eePatients) isSecureRoom(room id.RoomID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rooms[room]
}

// hideSecureRooms removes the secure rooms' room and ephemeral events from the transactions
// the homeserver pushes before bridgev2 reads them. bridgev2 would otherwise try to decrypt
// staff's Megolm messages there, wait for a room key the bot never gets (it is not a member,
// and staff share keys only with members), then send m.room_key_request to the sender's
// devices and a failure status (done-when 6). To-device events and the rest pass unchanged.
func (p *e2eePatients) hideSecureRooms() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			// Whatever the token: hiding costs nothing when mautrix then refuses the request.
			if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/transactions/") {
				next.ServeHTTP(rw, r)
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, e2ee.MaxTransactionBytes))
			if err != nil {
				mautrix.MNotJSON.WithMessage("Failed to read the transaction.").Write(rw)
				return
			}
			if filtered, hidden := p.filterTransaction(body); hidden > 0 {
				zerolog.Ctx(r.Context()).Debug().Int("hidden_events", hidden).
					Msg("Kept secure-room events from bridgev2 (the bot is not in those rooms)")
				body = filtered
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			next.ServeHTTP(rw, r)
		})
	}
}

// filterTransaction returns body without the secure rooms' events, and how many it removed;
// a body it cannot read is returned as it is (mautrix answers it).
func (p *e2eePatients) filterTransaction(body []byte) ([]byte, int) {
	var txn map[string]json.RawMessage
	if json.Unmarshal(body, &txn) != nil {
		return body, 0
	}
	hidden := 0
	for _, key := range []string{"events", "ephemeral", "de.sorunome.msc2409.ephemeral"} {
		raw, ok := txn[key]
		if !ok {
			continue
		}
		var evts []json.RawMessage
		if json.Unmarshal(raw, &evts) != nil {
			continue
		}
		kept := evts[:0]
		for _, evt := range evts {
			var head struct {
				RoomID id.RoomID `json:"room_id"`
			}
			if json.Unmarshal(evt, &head) == nil && head.RoomID != "" && p.isSecureRoom(head.RoomID) {
				hidden++
				continue
			}
			kept = append(kept, evt)
		}
		txn[key], _ = json.Marshal(kept)
	}
	if hidden == 0 {
		return body, 0
	}
	out, err := json.Marshal(txn)
	if err != nil {
		return body, 0
	}
	return out, hidden
}

// sessionHandler serves E2EEPathPrefix behind the secure chat's session cookie: the session's
// conversation names its patient-web user and device; without a session or a secure room it
// is 403, and nothing reaches the homeserver. The page without a session gets the secure
// chat's own answer (its chat page's: the cookie cleared, the signed-out page); the assets,
// the same bytes for everyone, need no session.
func (p *e2eePatients) sessionHandler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Cache-Control", "no-store")
		svc := p.c.Secure
		if svc == nil || !p.c.started.Load() {
			rw.Header().Set("Retry-After", "1")
			http.Error(rw, "carebridge is starting", http.StatusServiceUnavailable)
			return
		}
		if strings.HasPrefix(r.URL.Path, p.page.AssetPrefix()) {
			rw.Header().Del("Cache-Control")
			p.page.ServeAsset(rw, r)
			return
		}
		token := sessionCookie(r, p.c.publicBase())
		rest := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(E2EEPathPrefix, "/"))
		var sess *securechat.Session
		var err error
		if rest == "/events" {
			// A poll is the page's own doing, not the patient's: it does not keep the session alive.
			sess, err = svc.CheckSession(r.Context(), token)
		} else {
			sess, err = svc.Session(r.Context(), token)
		}
		if err != nil && r.URL.Path == p.page.PagePath() {
			p.asChatPage(rw, r)
			return
		}
		if err != nil {
			mautrix.MForbidden.WithMessage("No secure chat session.").Write(rw)
			return
		}
		p.mu.Lock()
		sp := p.byConv[[2]string{sess.Conversation.LoginID, sess.Conversation.PortalID}]
		p.mu.Unlock()
		if sp == nil && r.URL.Path == p.page.PagePath() {
			http.Error(rw, "This conversation has no end-to-end encrypted room.", http.StatusForbidden)
			return
		}
		if sp == nil {
			mautrix.MForbidden.WithMessage("This conversation has no end-to-end encrypted room.").Write(rw)
			return
		}
		if r.URL.Path == p.page.PagePath() {
			members, err := p.members(r.Context(), sp.user)
			if err != nil {
				zerolog.Ctx(r.Context()).Err(err).Msg("Failed to read the secure room's members for the patient page")
				http.Error(rw, "The secure room could not be read; try again.", http.StatusBadGateway)
				return
			}
			p.page.ServePage(rw, r, e2ee.PageDevice{User: sp.user, Device: sp.device, Room: sp.room, Members: members})
			return
		}
		ctx := e2ee.WithDevice(r.Context(), sp.device)
		r2 := r.Clone(ctx)
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		if raw := r.URL.EscapedPath(); strings.HasPrefix(raw, strings.TrimSuffix(E2EEPathPrefix, "/")) {
			r2.URL.RawPath = strings.TrimPrefix(raw, strings.TrimSuffix(E2EEPathPrefix, "/"))
		}
		switch {
		case rest == "/events":
			sp.events.ServeHTTP(rw, r2)
		case strings.HasPrefix(rest, "/_matrix/client/"):
			sp.proxy.ServeHTTP(rw, r2)
		default:
			mautrix.MNotFound.WithMessage("Not a patient E2EE endpoint.").Write(rw)
		}
	})
}

// asChatPage answers the page's request as the secure chat's chat page would (securechat.Web,
// on the same router), so a signed-out patient gets the secure chat's usual answer and this
// spike writes no second one.
func (p *e2eePatients) asChatPage(rw http.ResponseWriter, r *http.Request) {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath, r2.URL.RawQuery = securechat.ChatPath, "", ""
	rw.Header().Del("Cache-Control")
	p.mc.AS.Router.ServeHTTP(rw, r2)
}

// sessionCookie is the secure chat's session cookie (securechat.Web's: __Host-carebridge, or
// carebridge where cookies are insecure on a loopback http address).
func sessionCookie(r *http.Request, publicBase string) string {
	name := "__Host-carebridge"
	if securechat.LoopbackHTTP(publicBase) {
		name = "carebridge"
	}
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// command is `!sms e2ee-room`. It is built here rather than listed in commands.go's one list
// so that default builds have no such command (see TestEveryCommandIsDefinedInCommandsGoAndListedOnce).
func (p *e2eePatients) command() *commands.FullHandler {
	return &commands.FullHandler{
		Name: "e2ee-room",
		Help: commands.HelpMeta{Section: HelpSectionCarebridge, Description: "Spike (issue 18): make this conversation's " +
			"end-to-end encrypted room with the patient's browser (no bridge bot in it)"},
		RequiresPortal: true,
		Func: func(ce *commands.Event) {
			conv, err := p.c.conversationOf(ce.Ctx, ce.Portal)
			if err != nil {
				ce.Reply("%s", err.Error())
				return
			}
			sp, created, err := p.secureRoom(ce.Ctx, conv, ce.Portal.MXID)
			if err != nil {
				zerolog.Ctx(ce.Ctx).Err(err).Msg("Failed to make the end-to-end encrypted room")
				ce.Reply("Could not make the end-to-end encrypted room; see the bridge's log.")
				return
			}
			if !created {
				ce.Reply("This conversation's end-to-end encrypted room is %s.", sp.room)
				return
			}
			ce.Reply("Made the end-to-end encrypted room %s with the patient's browser user %s; you are invited.", sp.room, sp.user)
		},
	}
}

// secureRoom makes (once per conversation) the patient-web user, its browser device
// (MSC4190), and the secure room: created by that user, encrypted (Megolm, shared history),
// the portal room's staff invited, the bridge bot not in it.
func (p *e2eePatients) secureRoom(ctx context.Context, conv *database.Conversation, portalRoom id.RoomID) (*securePatient, bool, error) {
	key := [2]string{conv.LoginID, conv.PortalID}
	p.mu.Lock()
	if sp := p.byConv[key]; sp != nil {
		p.mu.Unlock()
		return sp, false, nil
	}
	p.mu.Unlock()
	as := p.mc.AS
	staff, err := p.staffOf(ctx, portalRoom)
	if err != nil {
		return nil, false, err
	}
	user := id.NewUserID(e2eePatientLocalpartPrefix+randomHex(10), as.HomeserverDomain)
	device := id.DeviceID("PW" + strings.ToUpper(randomHex(5)))
	intent := as.Intent(user)
	if err = intent.EnsureRegistered(ctx); err != nil {
		return nil, false, fmt.Errorf("failed to register the patient-web user: %w", err)
	}
	if err = intent.CreateDeviceMSC4190(ctx, device, "Patient browser"); err != nil {
		return nil, false, fmt.Errorf("failed to create the patient's browser device: %w", err)
	}
	sp := &securePatient{user: user, device: device}
	// Filed for from before the room exists, so the page misses nothing of it.
	p.inbox.AddDevice(e2ee.Device{User: user, ID: device})
	p.mu.Lock()
	p.byUser[user] = sp
	p.mu.Unlock()
	resp, err := intent.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		Invite: staff,
		InitialState: []*event.Event{
			{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}},
			{Type: event.StateHistoryVisibility, Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityShared}}},
		},
	})
	if err != nil {
		return nil, false, fmt.Errorf("failed to create the secure room: %w", err)
	}
	sp.room = resp.RoomID
	proxy, err := e2ee.New(e2ee.Config{
		HomeserverURL: p.mc.Config.Homeserver.Address, ASToken: as.Registration.AppToken, UserID: user,
		DeviceIDs: []id.DeviceID{device}, RoomID: resp.RoomID,
		Members: func(ctx context.Context) ([]id.UserID, error) { return p.members(ctx, user) },
		KeysUploaded: func(_ context.Context, d id.DeviceID, counts map[id.KeyAlgorithm]int) {
			p.inbox.KeysUploaded(e2ee.Device{User: user, ID: d}, counts)
		},
	})
	if err != nil {
		return nil, false, err
	}
	sp.proxy, sp.events = proxy, p.inbox.EventsHandler(user)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rooms[resp.RoomID] = true
	p.byConv[key] = sp
	p.inbox.SetSecureRoom(user, resp.RoomID)
	zerolog.Ctx(ctx).Info().Stringer("secure_room_id", resp.RoomID).Stringer("patient_web_user", user).
		Msg("Made an end-to-end encrypted room for the patient's browser")
	return sp, true, nil
}

// staffOf are the portal room's joined members but the bot and the ghosts.
func (p *e2eePatients) staffOf(ctx context.Context, portalRoom id.RoomID) ([]id.UserID, error) {
	resp, err := p.mc.AS.BotIntent().JoinedMembers(ctx, portalRoom)
	if err != nil {
		return nil, fmt.Errorf("failed to read the conversation room's members: %w", err)
	}
	var staff []id.UserID
	for u := range resp.Joined {
		if u == p.mc.Bot.UserID || p.c.Bridge.IsGhostMXID(u) {
			continue
		}
		staff = append(staff, u)
	}
	return staff, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
