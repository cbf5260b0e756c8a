package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestStaffStartChat: staff start a conversation with a number in any usual form; all
// forms lead to one room, the staff are invited, and a reply goes out as SMS.
func TestStaffStartChat(t *testing.T) { eachDB(t, runStaffStartChat) }

func runStaffStartChat(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	var err error

	type dmResp struct {
		ID       string `json:"id"`
		MXID     string `json:"mxid"`
		DMRoomID string `json:"dm_room_mxid"`
	}
	var rooms []string
	ghost := ""
	for _, form := range []string{"(555) 123-4567", "+1 555 123 4567", "5551234567"} {
		var resp dmResp
		_, err := e.br.Provision(ctx, http.MethodPost, "/v3/create_dm/"+url.PathEscape(form), e.adminID, nil, &resp)
		require.NoError(t, err, form)
		assert.Regexp(t, "^p[a-z2-7]{16}$", resp.ID, "an opaque ID, not the number")
		assert.Equal(t, "@sms_"+resp.ID+":"+e.hs.ServerName(), resp.MXID, form)
		if ghost == "" {
			ghost = resp.MXID
		}
		assert.Equal(t, ghost, resp.MXID, "one ghost per patient number")
		rooms = append(rooms, resp.DMRoomID)
	}
	require.NotEmpty(t, rooms[0])
	assert.Equal(t, rooms[0], rooms[1], "one room per patient number")
	assert.Equal(t, rooms[0], rooms[2], "one room per patient number")

	_, err = e.br.Provision(ctx, http.MethodPost, "/v3/create_dm/"+url.PathEscape("call me"), e.adminID, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a phone number this clinic can text")

	joined, err := nurse.WaitJoined(ctx, rooms[0])
	require.NoError(t, err, "the staff are invited to staff-started conversations too")
	_, _, err = nurse.Send(ctx, joined, "Your lab results are ready. Please call us back.")
	require.NoError(t, err)
	sms, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	assert.Equal(t, clinicPhone, sms.From)
	assert.Equal(t, "nurse: Your lab results are ready. Please call us back.", sms.Body)

	// Staff name the patient: the ghost's display name changes; the command is not texted.
	_, _, err = nurse.Send(ctx, joined, "!sms name  Maria   Lopez ")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == joined && m.MsgType == "m.notice" && m.Body == "This number is now shown as Maria Lopez."
	})
	require.NoError(t, err)
	resp, err := http.Get(e.hs.URL() + "/_matrix/client/v3/profile/" + url.PathEscape(ghost) + "/displayname")
	require.NoError(t, err)
	defer resp.Body.Close()
	var profile struct {
		DisplayName string `json:"displayname"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&profile))
	assert.Equal(t, "Maria Lopez", profile.DisplayName)
	for _, m := range e.fake.Messages() {
		assert.NotContains(t, m.Body, "Maria", "a bridge command is never sent as SMS")
	}
}
