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
