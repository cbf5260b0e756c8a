package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

// patientGhost is the Matrix ID of a patient number's ghost as staff and their tools learn
// it: from the bridge (the provisioning API's resolve_identifier, which start-chat uses),
// since nothing in the ID tells the number.
func (e *env) patientGhost(t *testing.T, ctx context.Context, phone string) string {
	t.Helper()
	var resp struct {
		ID   string `json:"id"`
		MXID string `json:"mxid"`
	}
	_, err := e.br.Provision(ctx, http.MethodGet, "/v3/resolve_identifier/"+url.PathEscape(phone), e.adminID, nil, &resp)
	require.NoError(t, err)
	require.NotEmpty(t, resp.MXID)
	return resp.MXID
}

// rawRoomState is every current state event of a room, as a member reads it.
func rawRoomState(t *testing.T, ctx context.Context, client *mautrix.Client, roomID string) []json.RawMessage {
	t.Helper()
	var state []json.RawMessage
	_, err := client.MakeRequest(ctx, http.MethodGet, client.BuildClientURL("v3", "rooms", roomID, "state"), nil, &state)
	require.NoError(t, err)
	return state
}

// waitJoinedMembers polls the room's joined members until ok says they are as expected.
func waitJoinedMembers(t *testing.T, ctx context.Context, client *mautrix.Client, roomID string, ok func(map[id.UserID]bool) bool) map[id.UserID]bool {
	t.Helper()
	for {
		resp, err := client.JoinedMembers(ctx, id.RoomID(roomID))
		require.NoError(t, err)
		members := map[id.UserID]bool{}
		for userID := range resp.Joined {
			members[userID] = true
		}
		if ok(members) {
			return members
		}
		select {
		case <-ctx.Done():
			t.Fatalf("room %s's members stayed %v", roomID, members)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// assertNoPatientDigits checks what any server in the room sees: member IDs and the
// content and keys of every state event.
func assertNoPatientDigits(t *testing.T, ctx context.Context, client *mautrix.Client, roomID string) {
	t.Helper()
	digits := strings.TrimPrefix(patient, "+1") // 5551234567: the number in any form holds it
	members, err := client.JoinedMembers(ctx, id.RoomID(roomID))
	require.NoError(t, err)
	for userID := range members.Joined {
		assert.NotContains(t, userID.String(), digits, "a member's Matrix ID")
	}
	for _, evt := range rawRoomState(t, ctx, client, roomID) {
		assert.NotContains(t, string(evt), digits, "a state event of room %s", roomID)
	}
}

// bridgeChannelIDs is the channel ID of each bridge info state event in the room.
func bridgeChannelIDs(t *testing.T, ctx context.Context, client *mautrix.Client, roomID string) []string {
	t.Helper()
	var ids []string
	for _, raw := range rawRoomState(t, ctx, client, roomID) {
		var evt struct {
			Type    string `json:"type"`
			Content struct {
				Channel struct {
					ID string `json:"id"`
				} `json:"channel"`
			} `json:"content"`
		}
		require.NoError(t, json.Unmarshal(raw, &evt))
		if evt.Type == "m.bridge" {
			ids = append(ids, evt.Content.Channel.ID)
		}
	}
	return ids
}

// TestPatientMatrixIDIsOpaque: the patient's ghost and the room's bridge info carry no
// trace of the number, for the servers a room federates with (names masked, as such a
// clinic sets them); start-chat by number still finds the conversation, and the same
// patient texting a second clinic number gets a second room with the same ghost.
func TestPatientMatrixIDIsOpaque(t *testing.T) { eachDB(t, runPatientMatrixIDIsOpaque) }

func runPatientMatrixIDIsOpaque(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		cfg["network"].(map[string]any)["privacy"] = map[string]any{"mask_room_names": true}
	})
	staff := e.hs.Login(t, "nurse", "nurse-password-1")

	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Do I need to fast before the blood test?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Do I need to fast before the blood test?" })
	require.NoError(t, err)
	ghost := e.patientGhost(t, ctx, patient)
	assert.Equal(t, ghost, msg.Sender, "the text comes from the ghost the bridge names for the number")
	assert.Regexp(t, `^@sms_p[a-z2-7]{16}:`, ghost)
	waitJoinedMembers(t, ctx, staff, roomID, func(m map[id.UserID]bool) bool { return m[id.UserID(ghost)] })
	assertNoPatientDigits(t, ctx, staff, roomID)

	assert.Equal(t, []string{strings.TrimPrefix(strings.SplitN(ghost, ":", 2)[0], "@sms_")}, bridgeChannelIDs(t, ctx, staff, roomID),
		"the bridge info names the conversation by the ghost's opaque ID")

	// Staff start a chat by the number: the same room, the same ghost.
	var dm struct {
		ID       string `json:"id"`
		MXID     string `json:"mxid"`
		DMRoomID string `json:"dm_room_mxid"`
	}
	_, err = e.br.Provision(ctx, http.MethodPost, "/v3/create_dm/"+url.PathEscape("(555) 123-4567"), e.adminID, nil, &dm)
	require.NoError(t, err)
	assert.Equal(t, roomID, dm.DMRoomID)
	assert.Equal(t, ghost, dm.MXID)

	// The patient texts a second clinic number: its own room, the same ghost.
	const secondClinic = "+15550002222"
	e.fake.AddNumber(accountSID, secondClinic)
	_, err = e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, secondClinic)
	require.NoError(t, err)
	_, err = e.fake.SendInbound(ctx, patient, secondClinic, "Also, can I take my usual pills?")
	require.NoError(t, err)
	second, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Also, can I take my usual pills?" })
	require.NoError(t, err)
	assert.NotEqual(t, roomID, second.RoomID, "one room per clinic number")
	assert.Equal(t, ghost, second.Sender)
	waitJoinedMembers(t, ctx, staff, second.RoomID, func(m map[id.UserID]bool) bool { return m[id.UserID(ghost)] })
	assertNoPatientDigits(t, ctx, staff, second.RoomID)

	// Replies still reach the number.
	_, _, err = nurse.Send(ctx, second.RoomID, "Yes, take them as usual.")
	require.NoError(t, err)
	sms, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return strings.HasSuffix(m.Body, "Yes, take them as usual.") })
	require.NoError(t, err)
	assert.Equal(t, patient, sms.To)
	assert.Equal(t, secondClinic, sms.From)
}

// lastPhoneGhostRelease is the last commit whose patient ghosts were named by the number
// (@sms_15551234567): TestUpgradeMovesRoomsToOpaqueGhosts makes its rooms with it.
const lastPhoneGhostRelease = "e93bf856b1e23b30518b5d95ceb422512ba65d9d"

// eventually polls cond until it holds, failing the test when ctx ends first.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestUpgradeMovesRoomsToOpaqueGhosts: a bridge whose patient ghost is named by the
// number (the release before opaque IDs, on its own database and rooms) is upgraded. At
// start the old ghost leaves the room and loses its profile (the patient's name), the
// opaque ghost joins with the name staff gave, the bridge info names the opaque ID, and the
// patient's next text reaches the same room from the new ghost.
func TestUpgradeMovesRoomsToOpaqueGhosts(t *testing.T) { eachDB(t, runUpgradeMovesRoomsToOpaqueGhosts) }

func runUpgradeMovesRoomsToOpaqueGhosts(t *testing.T, kind string) {
	if testing.Short() {
		t.Skip("builds the previous release and starts Dendrite, the bridge and matrix-nio")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	current := testenv.BridgeBinary(t)
	e := &env{db: testenv.NewDatabase(t, kind), fake: testenv.NewFakeTwilio()}
	t.Cleanup(e.fake.Close)
	e.fake.AddAccount(accountSID, authToken)
	e.fake.AddNumber(accountSID, clinicPhone)
	e.hs = testenv.NewDendrite(t)
	e.nurseID = "@nurse:" + e.hs.ServerName()
	e.br = testenv.NewBridge(t, testenv.BridgeOptions{
		Homeserver: e.hs, DB: e.db, TwilioAPIURL: e.fake.URL(), StaffInvites: []string{e.nurseID},
		Binary: testenv.BuildBridgeAt(t, lastPhoneGhostRelease),
	})
	e.hs.Start(e.br.RegistrationPath)
	e.adminID = e.hs.CreateUser(t, "admin", "admin-password-1")
	e.hs.CreateUser(t, "nurse", "nurse-password-1")
	e.br.Start()
	_, err := e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")
	staff := e.hs.Login(t, "nurse", "nurse-password-1")

	// The old release: the patient texts, staff name them.
	legacy := id.UserID("@sms_15551234567:" + e.hs.ServerName())
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Can I move my appointment to Monday?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Can I move my appointment to Monday?" })
	require.NoError(t, err)
	require.Equal(t, legacy.String(), msg.Sender, "the old release names the ghost by the number")
	_, _, err = nurse.Send(ctx, roomID, "!sms name Maria Lopez")
	require.NoError(t, err)
	notice(t, ctx, nurse, "now shown as Maria Lopez")
	require.Equal(t, []string{"15551234567"}, bridgeChannelIDs(t, ctx, staff, roomID))

	// The upgrade.
	e.br.Stop()
	e.br.SetBinary(current)
	e.br.Restart()

	ghost := e.patientGhost(t, ctx, patient)
	assert.Regexp(t, `^@sms_p[a-z2-7]{16}:`, ghost)
	members := waitJoinedMembers(t, ctx, staff, roomID, func(m map[id.UserID]bool) bool { return m[id.UserID(ghost)] && !m[legacy] })
	for userID := range members {
		assert.NotContains(t, userID.String(), "5551234567", "a member's Matrix ID")
	}
	opaque := strings.TrimPrefix(strings.SplitN(ghost, ":", 2)[0], "@sms_")
	eventually(t, ctx, "the bridge info to name the opaque ID", func() bool {
		ids := bridgeChannelIDs(t, ctx, staff, roomID)
		return len(ids) == 1 && ids[0] == opaque
	})
	eventually(t, ctx, "the old ghost's profile to be emptied", func() bool {
		profile, err := staff.GetProfile(ctx, legacy)
		return err == nil && profile.DisplayName == ""
	})
	for _, raw := range rawRoomState(t, ctx, staff, roomID) {
		var evt struct {
			Type     string         `json:"type"`
			StateKey string         `json:"state_key"`
			Content  map[string]any `json:"content"`
		}
		require.NoError(t, json.Unmarshal(raw, &evt))
		if evt.Type == "m.room.member" && evt.StateKey == legacy.String() {
			assert.Equal(t, "leave", evt.Content["membership"])
			assert.Empty(t, evt.Content["displayname"], "the old ghost left without showing the patient's name again")
		}
	}
	profile, err := staff.GetProfile(ctx, id.UserID(ghost))
	require.NoError(t, err)
	assert.Equal(t, "Maria Lopez", profile.DisplayName, "staff still see the name they gave")

	// The patient texts again: the same room, from the opaque ghost; replies reach them.
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Monday at 10 works for me.")
	require.NoError(t, err)
	msg, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Monday at 10 works for me." })
	require.NoError(t, err)
	assert.Equal(t, roomID, msg.RoomID)
	assert.Equal(t, ghost, msg.Sender)
	_, _, err = nurse.Send(ctx, roomID, "Booked: Monday 10am.")
	require.NoError(t, err)
	sms, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return strings.HasSuffix(m.Body, "Booked: Monday 10am.") })
	require.NoError(t, err)
	assert.Equal(t, patient, sms.To)
}
