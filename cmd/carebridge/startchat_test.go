package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
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
	for i, form := range []string{"(555) 123-4567", "+1 555 123 4567", "5551234567"} {
		var resp dmResp
		status, err := e.br.Provision(ctx, http.MethodPost, "/v3/create_dm/"+url.PathEscape(form), e.adminID, nil, &resp)
		require.NoError(t, err, form)
		// bridgev2's convention: 201 Created when the chat was made, 200 when it existed.
		assert.Equal(t, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[i == 0], status, form)
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

// TestAnyStaffStartsChat: a staff member who never linked a number (bridge.permissions
// `user` for the domain) starts a conversation with a patient who never texted, with
// `start-chat`, through the clinic number: the answer says it was started, the room has the
// staff and the starter invited, and the patient gets what she writes there. Starting it
// again, in another form of the number, says it already exists.
func TestAnyStaffStartsChat(t *testing.T) { eachDB(t, runAnyStaffStartsChat) }

func runAnyStaffStartsChat(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	server := e.hs.ServerName()
	// kim is on no staff_invites list and has no login of her own.
	e.hs.CreateUser(t, "kim", "kim-password-1")
	kim := testenv.StartStaffAgent(t, e.hs.URL(), "@kim:"+server, "kim-password-1")
	bot := "@smsbot:" + server

	commandRoom := botRoom(t, ctx, kim, bot)
	answer := func(a *testenv.StaffAgent, roomID, command, contains string) testenv.AgentMessage {
		t.Helper()
		_, _, err := a.Send(ctx, roomID, command)
		require.NoError(t, err)
		m, err := a.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
			return m.RoomID == roomID && m.Sender == bot && strings.Contains(m.Body, contains)
		})
		require.NoError(t, err, "answer to %q containing %q", command, contains)
		return m
	}

	started := answer(kim, commandRoom, "!sms start-chat (555) 123-4567", "Started a conversation with")
	assert.True(t, started.Encrypted)
	assert.NotContains(t, started.Body, "already")
	joined := linkedRoom(t, started.Body)
	_, err := kim.WaitJoined(ctx, joined)
	require.NoError(t, err, "the staff member who started it is invited")
	_, err = nurse.WaitJoined(ctx, joined)
	require.NoError(t, err, "the staff are invited")
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == joined && m.MsgType == "m.notice" && m.Body == "kim started this conversation."
	})
	require.NoError(t, err, "the room says who started it")

	_, _, err = kim.Send(ctx, joined, "Hello, this is Riverside Clinic following up on your visit.")
	require.NoError(t, err)
	sms, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	assert.Equal(t, clinicPhone, sms.From)
	assert.Equal(t, "kim: Hello, this is Riverside Clinic following up on your visit.", sms.Body)

	// Again, in another form and from another staff member's room: one conversation.
	nurseCommands := botRoom(t, ctx, nurse, bot)
	again := answer(nurse, nurseCommands, "!sms pm +1 555 123 4567", "There is already a conversation with")
	assert.Equal(t, joined, linkedRoom(t, again.Body))
	answer(nurse, nurseCommands, "!sms start-chat call me", "is not a phone number this clinic can text")
	answer(nurse, nurseCommands, "!sms start-chat "+clinicPhone, "is the clinic's own number")

	log := e.br.Log()
	assert.NotContains(t, log, "requires you to be logged in")
	assert.NotContains(t, log, "following up on your visit", "no message body in the log")
	assert.Equal(t, []string{"@kim:" + server + "|ok|start-chat"}, auditRows(t, e.db, "conversation started"),
		"started once, audited once")
}

// linkedRoom is the room a bot's answer links (a matrix.to link).
func linkedRoom(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`https://matrix\.to/#/([^\s)?]+)`).FindStringSubmatch(body)
	require.NotNil(t, m, "a room link in %q", body)
	roomID, err := url.PathUnescape(m[1])
	require.NoError(t, err)
	return roomID
}

// botRoom is a new encrypted room of a staff member with the bridge bot, once the bot has
// joined and greeted (so that the bot's device gets the keys of what is sent next).
func botRoom(t *testing.T, ctx context.Context, a *testenv.StaffAgent, bot string) string {
	t.Helper()
	roomID, err := a.CreateRoom(ctx, []string{bot}, true)
	require.NoError(t, err)
	_, err = a.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.RoomID == roomID && m.Sender == bot })
	require.NoError(t, err, "the bot joined %s's room", a.UserID)
	return roomID
}
