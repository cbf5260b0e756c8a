//go:build e2eepatient

package e2ee

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestPatientDeviceDecryptsThroughTheProxyOnSynapse is the first end-to-end proof of issue 18:
// a patient's browser device on Element's Rust crypto (matrix-sdk-crypto-wasm's OlmMachine, in
// Node), talking only to the allowlist Proxy and the events long poll, decrypts a message a
// nurse sent from Element's crypto (matrix-js-sdk) and replies; the nurse's client decrypts the
// reply and attributes it to the patient's own device, with no mismatched-sender warning.
// Before the nurse arrives the page sets up the patient-web user's cross-signing and signs its
// device through the proxy (step 4), so Element sees the device as signed by its owner and
// shows the reply with no shield (not the red "unsigned device").
//
// The page gets the secure room's timeline (the nurse's encrypted message, the member events)
// from the inbox, which files it from the appservice transactions (step 4); the test hands it
// nothing but commands.
func TestPatientDeviceDecryptsThroughTheProxyOnSynapse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	rig := newPatientRig(t, ctx)
	pd, patient, nurse, dev, as, created := rig.pd, rig.patient, rig.nurse, rig.dev, rig.as, rig.room
	pageRequests := &rig.pageRequests

	// The nurse has a cross-signing identity (as Element sets up at a first login): the page
	// shares its room keys only with devices their owner signed (identity-based sharing).
	staff := testenv.StartElementAgent(t, rig.hs.URL(), nurse.String(), rig.nursePassword, testenv.ElementOptions{CrossSign: true})
	_, err := staff.WaitJoined(ctx, created.String())
	require.NoError(t, err)

	// The nurse writes; the page gets the room key by olm and the encrypted event itself over
	// the events endpoint (the inbox files the secure room's timeline) and decrypts.
	const sentinel = "staff-sentinel-7c41: please take 2 tablets"
	staffEvent, sentAt, err := staff.Send(ctx, created.String(), sentinel)
	require.NoError(t, err)
	var raw json.RawMessage
	_, err = as.MakeRequest(ctx, http.MethodGet, as.BuildClientURL("v3", "rooms", created, "event", staffEvent), nil, &raw)
	require.NoError(t, err, "reading the nurse's event as the patient-web user, to see what the homeserver holds")
	var wire struct {
		Type    string `json:"type"`
		Content struct {
			Algorithm string `json:"algorithm"`
			Body      string `json:"body"`
		} `json:"content"`
	}
	require.NoError(t, json.Unmarshal(raw, &wire))
	require.Equal(t, "m.room.encrypted", wire.Type, "the nurse's message is encrypted on the homeserver")
	require.Empty(t, wire.Content.Body)

	dec, err := pd.waitFor(ctx, time.Minute, func(l patientLine) bool { return l.Type == "decrypted" && l.EventID == staffEvent })
	require.NoError(t, err, "the patient device never decrypted the nurse's message from its events")
	firstDecrypted := time.Since(sentAt)
	_, err = pd.waitFor(ctx, time.Second, func(l patientLine) bool {
		return l.Type == "room_event" && l.EventType == "m.room.member" && l.StateKey == nurse.String() && l.Membership == "join"
	})
	assert.NoError(t, err, "the nurse's join reached the page as a room event")
	assert.Equal(t, sentinel, dec.Body, "the patient device decrypted the nurse's text")
	assert.Equal(t, "m.room.message", dec.EventType)
	assert.Equal(t, nurse.String(), dec.Sender)
	assert.Equal(t, staff.DeviceID, dec.SenderDevice, "the room key came from the nurse's Element device")
	t.Logf("nurse's send → decrypted on the patient device: %s (%d ms of it from the event's arrival in the page)", firstDecrypted.Round(time.Millisecond), dec.WaitedMS)
	roomKeys := 0
	for _, l := range pd.lines() {
		for _, ev := range l.Events {
			if ev.Decrypted && ev.Sender == nurse.String() {
				roomKeys++
			}
			assert.False(t, ev.UTD, "a to-device event the patient device could not decrypt: %s from %s", ev.Type, ev.Sender)
		}
	}
	assert.Positive(t, roomKeys, "the room key came as an olm to-device event through the events endpoint")

	// The patient replies: room key to the nurse's devices by olm through the proxy, the
	// Megolm event through the proxy's send route.
	const replySentinel = "patient-sentinel-2e90: thank you, will do"
	replyStarted := time.Now()
	sent, err := pd.request(ctx, map[string]any{"cmd": "reply", "body": replySentinel}) // to the members the page saw
	require.NoError(t, err, "the patient device could not send its reply through the proxy")
	require.NotEmpty(t, sent.EventID)
	msg, err := staff.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.EventID == sent.EventID })
	require.NoError(t, err, "the nurse's Element never decrypted the patient's reply")
	t.Logf("patient's reply → decrypted in Element: %s; shield %q (%s)", time.Since(replyStarted).Round(time.Millisecond), msg.Shield, msg.ShieldReason)
	assert.Equal(t, replySentinel, msg.Body)
	assert.Equal(t, patient.String(), msg.Sender)
	assert.True(t, msg.Encrypted)
	assert.Equal(t, dev.String(), msg.SenderDevice, "Element attributes the reply to the patient's own device")
	assert.NotEqual(t, "MISMATCHED_SENDER", msg.ShieldReason)
	assert.NotEqual(t, "UNKNOWN_DEVICE", msg.ShieldReason, "Element knows the device that encrypted it")
	assert.Empty(t, staff.Undecryptable(), "nothing stayed undecryptable for the nurse")
	// Measured: no shield at all. The page signed its device with the patient's self-signing
	// key, so it is not UNSIGNED_DEVICE (red); the nurse never verified the patient's identity,
	// and Element draws nothing for an identity it has not verified and has not seen change.
	assert.Equal(t, "none", msg.Shield, "the reply's shield once the page cross-signed its device")
	assert.Empty(t, msg.ShieldReason)
	// Element's crypto matched the Megolm session's sender key to a device of the patient-web
	// user; that device is the page's, the only one, and signed by its owner.
	devices, err := staff.Devices(ctx, patient.String())
	require.NoError(t, err)
	if assert.Len(t, devices, 1, "Element sees one device of the patient-web user") {
		assert.Equal(t, dev.String(), devices[0].DeviceID)
		assert.True(t, devices[0].SignedByOwner, "Element sees the page's device as signed by its owner")
		t.Logf("Element's view of the patient's device: signed by owner %v, cross-signing verified %v, verified %v",
			devices[0].SignedByOwner, devices[0].CrossSigningVerified, devices[0].Verified)
	}

	// The step-3 finding, fixed: the proxy hands each keys/upload answer's counts to the inbox,
	// so the page never tops up from a pre-upload count. Synapse holds at most the page's 50
	// one-time keys (it held 100 before the fix). An empty keys/upload as the device reads it.
	devClient, err := mautrix.NewClient(rig.hs.URL(), patient, as.AccessToken)
	require.NoError(t, err)
	devClient.SetAppServiceUserID, devClient.SetAppServiceDeviceID, devClient.DeviceID = true, true, dev
	counts, err := devClient.UploadKeys(ctx, &mautrix.ReqUploadKeys{})
	require.NoError(t, err)
	t.Logf("one-time keys on Synapse for the page's device at the end: %d", counts.OneTimeKeyCounts.SignedCurve25519)
	assert.LessOrEqual(t, counts.OneTimeKeyCounts.SignedCurve25519, 50, "no second set of one-time keys from a stale count")
	assert.Positive(t, counts.OneTimeKeyCounts.SignedCurve25519)

	stats, err := pd.request(ctx, map[string]any{"cmd": "stats"})
	require.NoError(t, err)
	assert.Zero(t, stats.Refused, "the proxy refused none of the OlmMachine's requests")
	assert.Zero(t, stats.Undecrypted, "every encrypted event the page was given decrypted")
	assert.Contains(t, stats.Members, nurse.String(), "the page knows the nurse is in the room from the filed member events")
	t.Logf("the page got %d room events; members it knows: %v", stats.RoomEvents, stats.Members)
	var used []string
	pageRequests.Range(func(k, v any) bool {
		used = append(used, fmt.Sprintf("%s ×%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("the page's requests: %s; OlmMachine requests %v over %d event batches", strings.Join(used, ", "), stats.Requests, stats.Batches)
	if log, err := os.ReadFile(pd.stderr); err == nil {
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "keys/upload:") || strings.Contains(l, "events batch:") {
				t.Logf("patient device %s", l)
			}
		}
	}
	for _, e := range pd.errors() {
		t.Errorf("patient device error: %s", e)
	}
}

// TestUnsignedPatientDeviceIsWithheldOnSynapse is done-when line 3 of issue 18: a device the
// bridge adds to the patient-web user without the patient's signature (MSC4190, keys uploaded
// by the appservice, not signed by the patient's self-signing key) gets no room key from staff
// who exclude insecure devices (Element's setting, MSC4153) but m.room_key.withheld with code
// m.unverified, while the page's own device, signed by the patient, gets the key and decrypts,
// and the nurse's Element reads the patient's reply.
func TestUnsignedPatientDeviceIsWithheldOnSynapse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	rig := newPatientRig(t, ctx)

	// The rogue device: made by the appservice, its identity keys signed by itself only.
	const rogue = id.DeviceID("BRIDGEADDED1")
	require.NoError(t, rig.as.CreateDeviceMSC4190(ctx, rogue, "Added by the bridge"))
	account := crypto.NewOlmAccount()
	keys := &mautrix.DeviceKeys{
		UserID: rig.patient, DeviceID: rogue,
		Algorithms: []id.Algorithm{id.AlgorithmMegolmV1, id.AlgorithmOlmV1},
		Keys: map[id.DeviceKeyID]string{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, rogue): string(account.IdentityKey()),
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, rogue):    string(account.SigningKey()),
		},
	}
	sig, err := account.SignJSON(keys)
	require.NoError(t, err)
	keys.Signatures = signatures.NewSingleSignature(rig.patient, id.KeyAlgorithmEd25519, rogue.String(), sig)
	rogueClient, err := mautrix.NewClient(rig.hs.URL(), rig.patient, rig.as.AccessToken)
	require.NoError(t, err)
	rogueClient.SetAppServiceUserID, rogueClient.SetAppServiceDeviceID, rogueClient.DeviceID = true, true, rogue
	_, err = rogueClient.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: keys})
	require.NoError(t, err)
	rig.inbox.AddDevice(Device{rig.patient, rogue})

	nurse := testenv.StartElementAgent(t, rig.hs.URL(), rig.nurse.String(), rig.nursePassword,
		testenv.ElementOptions{CrossSign: true, ExcludeInsecureDevices: true})
	_, err = nurse.WaitJoined(ctx, rig.room.String())
	require.NoError(t, err)
	devices, err := nurse.Devices(ctx, rig.patient.String())
	require.NoError(t, err)
	signed := map[string]bool{}
	for _, d := range devices {
		signed[d.DeviceID] = d.SignedByOwner
	}
	assert.Equal(t, map[string]bool{rig.dev.String(): true, rogue.String(): false}, signed,
		"Element sees the page's device signed by the patient and the bridge's device not")

	const sentinel = "staff-sentinel-91d3: your results are ready"
	staffEvent, sentAt, err := nurse.Send(ctx, rig.room.String(), sentinel)
	require.NoError(t, err)
	var raw json.RawMessage
	_, err = rig.as.MakeRequest(ctx, http.MethodGet, rig.as.BuildClientURL("v3", "rooms", rig.room, "event", staffEvent), nil, &raw)
	require.NoError(t, err)
	var wire struct {
		Content struct {
			SessionID id.SessionID `json:"session_id"`
		} `json:"content"`
	}
	require.NoError(t, json.Unmarshal(raw, &wire))
	require.NotEmpty(t, wire.Content.SessionID)

	// The signed device decrypts, from the events the inbox filed for it.
	dec, err := rig.pd.waitFor(ctx, time.Minute, func(l patientLine) bool { return l.Type == "decrypted" && l.EventID == staffEvent })
	require.NoError(t, err, "the patient's signed device never decrypted the nurse's message")
	assert.Equal(t, sentinel, dec.Body)
	t.Logf("nurse (excluding insecure devices) send → decrypted on the signed patient device: %s", time.Since(sentAt).Round(time.Millisecond))

	// The bridge's device: what the homeserver pushed for it, through the inbox.
	var withheld []ToDeviceEvent
	var roomKeys int
	since := ""
	for len(withheld) == 0 {
		pollCtx, stop := context.WithTimeout(ctx, 20*time.Second)
		b, next, err := rig.inbox.Next(pollCtx, Device{rig.patient, rogue}, since)
		stop()
		require.NoError(t, err)
		require.NotEqual(t, since, next, "nothing reached the bridge's device within 20 s")
		since = next
		for _, ev := range b.ToDevice.Events {
			switch ev.Type {
			case event.ToDeviceRoomKeyWithheld.Type, "org.matrix.room_key.withheld":
				withheld = append(withheld, ev)
			case event.ToDeviceEncrypted.Type:
				roomKeys++
			}
		}
	}
	t.Logf("nurse's send → m.room_key.withheld in the bridge's device's inbox: %s", time.Since(sentAt).Round(time.Millisecond))
	require.Len(t, withheld, 1)
	var content struct {
		Code      string       `json:"code"`
		RoomID    id.RoomID    `json:"room_id"`
		SessionID id.SessionID `json:"session_id"`
		Algorithm id.Algorithm `json:"algorithm"`
		SenderKey string       `json:"sender_key"`
	}
	require.NoError(t, json.Unmarshal(withheld[0].Content, &content))
	assert.Equal(t, rig.nurse, withheld[0].Sender)
	assert.Equal(t, "m.unverified", content.Code)
	assert.Equal(t, rig.room, content.RoomID)
	assert.Equal(t, wire.Content.SessionID, content.SessionID, "withheld: the session of the nurse's message")
	assert.Equal(t, id.AlgorithmMegolmV1, content.Algorithm)
	assert.Zero(t, roomKeys, "no olm message (so no room key) for the bridge's device")

	// The signed device got no withheld, and the patient's reply decrypts in the excluding Element.
	for _, l := range rig.pd.lines() {
		for _, ev := range l.Events {
			assert.NotContains(t, ev.Type, "withheld", "the page's signed device was refused a key")
		}
	}
	sent, err := rig.pd.request(ctx, map[string]any{"cmd": "reply", "body": "patient-sentinel-5b7a: thanks"})
	require.NoError(t, err)
	// The page shares its own room key only with devices their owner signed
	// (CollectStrategy.identityBasedStrategy): the nurse's, not the bridge's.
	t.Logf("the page's room key shares: %v", sent.Recipients)
	rogueName := rig.patient.String() + "|" + rogue.String()
	assert.NotContains(t, sent.Recipients[event.ToDeviceEncrypted.Type], rogueName, "the page sent no room key to the bridge's device")
	assert.NotEmpty(t, sent.Recipients[event.ToDeviceEncrypted.Type], "the page shared its room key with someone (the nurse)")
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.EventID == sent.EventID })
	require.NoError(t, err, "the excluding Element never decrypted the patient's reply")
	assert.Equal(t, "patient-sentinel-5b7a: thanks", msg.Body)
	assert.Equal(t, rig.dev.String(), msg.SenderDevice)
	t.Logf("patient's reply in the excluding Element: shield %q (%s)", msg.Shield, msg.ShieldReason)
	assert.Equal(t, "none", msg.Shield, "measured: no shield, as without the setting")
	assert.Empty(t, nurse.Undecryptable())

	// What reached the bridge's device from the page: the inbox, read until it has been quiet
	// for 2 s after the nurse decrypted the reply (the page's shares went in the same
	// sendToDevice calls as the nurse's key, before the reply itself). A withheld notice the
	// page addressed to it must be there; an olm message (a room key) from the patient must not.
	wantWithheld := slices.Contains(sent.Recipients[event.ToDeviceRoomKeyWithheld.Type], rogueName)
	var fromPage, pageCodes []string
	for {
		pollCtx, stop := context.WithTimeout(ctx, 2*time.Second)
		b, next, err := rig.inbox.Next(pollCtx, Device{rig.patient, rogue}, since)
		stop()
		require.NoError(t, err)
		if next == since {
			break
		}
		since = next
		for _, ev := range b.ToDevice.Events {
			if ev.Sender == rig.patient {
				fromPage = append(fromPage, ev.Type)
				if ev.Type == event.ToDeviceRoomKeyWithheld.Type {
					var c struct {
						Code string `json:"code"`
					}
					require.NoError(t, json.Unmarshal(ev.Content, &c))
					pageCodes = append(pageCodes, c.Code)
				}
			}
		}
	}
	t.Logf("to-device events from the page to the bridge's device: %v (withheld addressed: %v)", fromPage, wantWithheld)
	assert.NotContains(t, fromPage, event.ToDeviceEncrypted.Type, "no olm message (no room key) from the page for the bridge's device")
	// Measured: the page tells the bridge's device it gets no key, as Element does.
	assert.True(t, wantWithheld, "the page addressed m.room_key.withheld to the bridge's device")
	assert.Equal(t, []string{"m.unverified"}, pageCodes, "the page's withheld notice reached the bridge's device, code m.unverified")
	for _, e := range rig.pd.errors() {
		t.Errorf("patient device error: %s", e)
	}
}

// patientRig is the spike's system on Synapse: the patient-web user with its browser device
// (PATIENTWEB1, the Node page, ready and cross-signed), the secure room with the nurse invited,
// the inbox behind the appservice listener, and the proxy and events endpoint the page uses.
type patientRig struct {
	hs            *testenv.Synapse
	as            *mautrix.Client
	inbox         *Inbox
	pd            *patientDevice
	patient       id.UserID
	dev           id.DeviceID
	nurse         id.UserID
	nursePassword string
	room          id.RoomID
	pageRequests  sync.Map // route → count, to report what the page used
	pageURL       string   // the origin of the proxy, the events endpoint and the page
	// session is the device the stand-in session names (WithDevice, the page's data-device):
	// dev, until a test opens a new browser profile as another of the proxy's devices.
	session atomic.Pointer[id.DeviceID]
}

// device is the browser device the stand-in session names now.
func (rig *patientRig) device() id.DeviceID { return *rig.session.Load() }

func newPatientRig(t *testing.T, ctx context.Context) *patientRig {
	t.Helper()
	return newPatientRigWith(t, ctx, rigOptions{})
}

// rigOptions change what newPatientRigWith sets up.
type rigOptions struct {
	// noNode leaves out the Node page: the caller brings its own (the browser page).
	noNode bool
	// mount adds handlers to the page's origin, behind the same stand-in session.
	mount func(mux *http.ServeMux, rig *patientRig)
	// moreDevices are further browser devices of the patient-web user the proxy serves (a
	// second browser profile); the test creates them on the homeserver and names them to the
	// inbox when their browser opens.
	moreDevices []id.DeviceID
}

func newPatientRigWith(t *testing.T, ctx context.Context, opts rigOptions) *patientRig {
	t.Helper()
	const (
		asToken = "as_token_e2ee18_device_7a21"
		hsToken = "hs_token_e2ee18_device_c5e9"
		dev     = id.DeviceID("PATIENTWEB1")
	)
	modules, err := testenv.ElementCryptoAvailable()
	testenv.RequireDep(t, testenv.DepElementCrypto, err)
	script, err := filepath.Abs(filepath.Join("testdata", "patient_device.mjs"))
	require.NoError(t, err)
	patient := id.UserID("@pw_6f1c2a:localhost")

	// The bridge's side: the inbox behind the appservice listener, the members of the room.
	var as *mautrix.Client
	var room id.RoomID
	var roomMu sync.Mutex
	members := func(ctx context.Context) ([]id.UserID, error) {
		roomMu.Lock()
		r := room
		roomMu.Unlock()
		if r == "" {
			return nil, nil
		}
		resp, err := as.JoinedMembers(ctx, r)
		if err != nil {
			return nil, err
		}
		return slices.Collect(maps.Keys(resp.Joined)), nil
	}
	inbox, err := NewInbox(InboxConfig{
		Devices: []Device{{patient, dev}},
		Members: func(ctx context.Context, p id.UserID) ([]id.UserID, error) {
			if p != patient {
				return nil, nil
			}
			return members(ctx)
		},
	})
	require.NoError(t, err)
	listener := httptest.NewServer(TransactionTee(inbox, hsToken)(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte("{}"))
	})))
	t.Cleanup(listener.Close) // after Synapse stops (cleanups run last first)

	hs := testenv.NewSynapse(t)
	// MSC3814 dehydrated devices (passkey recovery, done-when 4), for the spike's tests only.
	hs.EnableExperimental("msc3814_enabled")
	reg := filepath.Join(t.TempDir(), "registration.yaml")
	require.NoError(t, os.WriteFile(reg, []byte(fmt.Sprintf(inboxRegistration, listener.URL, asToken, hsToken)), 0o600))
	hs.Start(reg)
	const nursePassword = "correct-horse-battery"
	nurse := id.UserID(hs.CreateUser(t, "nurse", nursePassword))

	// The patient-web user, its browser device (MSC4190) and the secure room: encrypted,
	// history shared, the nurse invited.
	as, err = mautrix.NewClient(hs.URL(), patient, asToken)
	require.NoError(t, err)
	as.SetAppServiceUserID = true
	_, _, err = as.Register(ctx, &mautrix.ReqRegister[any]{Username: patient.Localpart(), Type: mautrix.AuthTypeAppservice, InhibitLogin: true})
	require.NoError(t, err)
	require.NoError(t, as.CreateDeviceMSC4190(ctx, dev, "Patient browser"))
	created, err := as.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		Invite: []id.UserID{nurse},
		InitialState: []*event.Event{
			{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}},
			{Type: event.StateHistoryVisibility, Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityShared}}},
		},
	})
	require.NoError(t, err)
	roomMu.Lock()
	room = created.RoomID
	roomMu.Unlock()
	inbox.SetSecureRoom(patient, created.RoomID)

	proxy, err := New(Config{
		HomeserverURL: hs.URL(), ASToken: asToken, UserID: patient, DeviceIDs: append([]id.DeviceID{dev}, opts.moreDevices...), RoomID: created.RoomID,
		Members: members,
		KeysUploaded: func(_ context.Context, d id.DeviceID, counts map[id.KeyAlgorithm]int) {
			inbox.KeysUploaded(Device{patient, d}, counts)
		},
	})
	require.NoError(t, err)
	// The secure chat's side, with a stand-in session that names the page's device.
	mux := http.NewServeMux()
	mux.Handle("/e2ee/events", inbox.EventsHandler(patient))
	mux.Handle("/_matrix/client/", proxy)
	rig := &patientRig{hs: hs, as: as, inbox: inbox, patient: patient, dev: dev, nurse: nurse, nursePassword: nursePassword, room: created.RoomID}
	first := dev
	rig.session.Store(&first)
	if opts.mount != nil {
		opts.mount(mux, rig)
	}
	page := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + routeName(r.Method, r.URL.Path)
		n, _ := rig.pageRequests.LoadOrStore(key, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		mux.ServeHTTP(rw, r.WithContext(WithDevice(r.Context(), rig.device())))
	}))
	t.Cleanup(page.Close) // after the patient device's long poll ends
	rig.pageURL = page.URL
	if opts.noNode {
		return rig
	}

	started := time.Now()
	rig.pd = startPatientDevice(t, "node", script, modules, page.URL, page.URL+"/e2ee/events", patient.String(), dev.String(), created.RoomID.String())
	_, err = rig.pd.wait(ctx, func(l patientLine) bool { return l.Type == "ready" })
	require.NoError(t, err, "the patient device never uploaded its keys through the proxy")
	t.Logf("patient device ready (keys uploaded through the proxy) in %s", time.Since(started).Round(time.Millisecond))

	// The page sets up the patient-web user's cross-signing and signs its own device, through
	// the proxy: Synapse takes a user's first cross-signing keys without user-interactive auth.
	xs, err := rig.pd.request(ctx, map[string]any{"cmd": "cross_sign"})
	require.NoError(t, err, "the patient device could not set up cross-signing through the proxy")
	assert.True(t, xs.HasMaster && xs.HasSelfSigning && xs.HasUserSigning, "the page holds its three cross-signing keys")
	t.Logf("patient device cross-signed itself in %d ms", xs.TookMS)
	return rig
}

// routeName is a request path without its IDs, for the report of what the page used.
func routeName(method, path string) string {
	if path == "/e2ee/events" || path == "/e2ee/page" {
		return path
	}
	if strings.HasPrefix(path, "/e2ee/assets/") {
		return "/e2ee/assets"
	}
	if rt, _, _ := match(path, method); rt != nil {
		return rt.name
	}
	if rt, _, _ := match(path, http.MethodPut); rt != nil {
		return rt.name
	}
	if rt, _, _ := match(path, http.MethodPost); rt != nil {
		return rt.name
	}
	return "other"
}

// patientLine is a line the patient device script prints.
type patientLine struct {
	Type           string `json:"type"`
	ReqID          string `json:"req_id"`
	Message        string `json:"message"`
	Status         int    `json:"status"`
	Errcode        string `json:"errcode"`
	Body           string `json:"body"`
	EventType      string `json:"event_type"`
	EventID        string `json:"event_id"`
	Sender         string `json:"sender"`
	SenderDevice   string `json:"sender_device"`
	WaitedMS       int64  `json:"waited_ms"`
	TookMS         int64  `json:"took_ms"`
	HasMaster      bool   `json:"has_master"`
	HasSelfSigning bool   `json:"has_self_signing"`
	HasUserSigning bool   `json:"has_user_signing"`
	Events         []struct {
		Type      string `json:"type"`
		Sender    string `json:"sender"`
		Decrypted bool   `json:"decrypted"`
		UTD       bool   `json:"utd"`
	} `json:"events"`
	StateKey    string         `json:"state_key"`
	Membership  string         `json:"membership"`
	RoomEvents  int            `json:"room_events"`
	Undecrypted int            `json:"undecrypted"`
	Members     []string       `json:"members"`
	Requests    map[string]int `json:"requests"`
	Refused     int            `json:"refused"`
	Batches     int            `json:"batches"`
	// Recipients of a reply's room key shares, per to-device type: "user|device".
	Recipients map[string][]string `json:"recipients"`
}

// patientDevice runs testdata/patient_device.mjs and reads its JSON lines.
type patientDevice struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr string

	mu      sync.Mutex
	all     []patientLine
	changed chan struct{}
	exited  bool
	nextReq int
}

func startPatientDevice(t *testing.T, argv ...string) *patientDevice {
	t.Helper()
	pd := &patientDevice{t: t, stderr: filepath.Join(t.TempDir(), "patient_device.stderr"), changed: make(chan struct{})}
	stderr, err := os.Create(pd.stderr)
	require.NoError(t, err)
	defer stderr.Close()
	pd.cmd = exec.Command(argv[0], argv[1:]...)
	pd.cmd.Stderr = stderr
	pd.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := pd.cmd.StdoutPipe()
	require.NoError(t, err)
	pd.stdin, err = pd.cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, pd.cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var l patientLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = patientLine{Type: "error", Message: "unparsable line from the patient device"}
			}
			pd.update(func() { pd.all = append(pd.all, l) })
		}
		_ = pd.cmd.Wait()
		pd.update(func() { pd.exited = true })
	}()
	t.Cleanup(func() {
		_ = pd.stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pd.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			tail, _ := os.ReadFile(pd.stderr)
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			t.Logf("patient device stderr tail:\n%s", tail)
		}
	})
	return pd
}

func (pd *patientDevice) update(f func()) {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	f()
	close(pd.changed)
	pd.changed = make(chan struct{})
}

func (pd *patientDevice) lines() []patientLine {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	return append([]patientLine(nil), pd.all...)
}

// errors are the script's error lines that answer no request (a refused request, a failed poll).
func (pd *patientDevice) errors() []string {
	var out []string
	for _, l := range pd.lines() {
		if l.Type == "error" && l.ReqID == "" {
			out = append(out, fmt.Sprintf("%s (status %d %s)", l.Message, l.Status, l.Errcode))
		}
	}
	return out
}

// wait returns the first line, from the start, that match accepts.
func (pd *patientDevice) wait(ctx context.Context, match func(patientLine) bool) (patientLine, error) {
	for {
		pd.mu.Lock()
		for _, l := range pd.all {
			if match(l) {
				pd.mu.Unlock()
				return l, nil
			}
		}
		exited, changed := pd.exited, pd.changed
		pd.mu.Unlock()
		if exited {
			return patientLine{}, errors.New("the patient device exited")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return patientLine{}, ctx.Err()
		}
	}
}

// waitFor is wait with its own time limit.
func (pd *patientDevice) waitFor(ctx context.Context, limit time.Duration, match func(patientLine) bool) (patientLine, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return pd.wait(ctx, match)
}

func (pd *patientDevice) request(ctx context.Context, cmd map[string]any) (patientLine, error) {
	pd.mu.Lock()
	pd.nextReq++
	reqID := strconv.Itoa(pd.nextReq)
	pd.mu.Unlock()
	cmd["req_id"] = reqID
	line, err := json.Marshal(cmd)
	if err != nil {
		return patientLine{}, err
	}
	if _, err = pd.stdin.Write(append(line, '\n')); err != nil {
		return patientLine{}, err
	}
	reply, err := pd.wait(ctx, func(l patientLine) bool { return l.ReqID == reqID })
	if err != nil {
		return patientLine{}, err
	}
	if reply.Type == "error" {
		return patientLine{}, errors.New(reply.Message)
	}
	return reply, nil
}
