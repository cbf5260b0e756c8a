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

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestWorkflowInbox: teams and their spaces (kept across a restart), take/assign/unassign,
// the assignee's mention on patient texts (quiet in a burst), urgent/routine, the inbox
// order, and close with the reopening by the patient's next text or by staff (reopen).
func TestWorkflowInbox(t *testing.T) { eachDB(t, runWorkflowInbox) }

// roomState reads a room's state as a user of the homeserver.
type roomState struct {
	t     *testing.T
	hsURL string
	token string
}

type stateEvent struct {
	Type     string         `json:"type"`
	StateKey string         `json:"state_key"`
	Content  map[string]any `json:"content"`
}

func (rs roomState) get(roomID string) []stateEvent {
	var events []stateEvent
	matrixGet(rs.t, rs.hsURL, rs.token, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/state", &events)
	return events
}

func (rs roomState) find(roomID, eventType, stateKey string) map[string]any {
	for _, evt := range rs.get(roomID) {
		if evt.Type == eventType && evt.StateKey == stateKey {
			return evt.Content
		}
	}
	return nil
}

// await polls until check accepts the room's state event (changes land just before or
// after the bridge's notice).
func (rs roomState) await(ctx context.Context, roomID, eventType, stateKey, what string, check func(content map[string]any) bool) map[string]any {
	rs.t.Helper()
	var content map[string]any
	for {
		content = rs.find(roomID, eventType, stateKey)
		if content != nil && check(content) {
			return content
		}
		select {
		case <-ctx.Done():
			raw, _ := json.Marshal(content)
			rs.t.Fatalf("%s: %s %q in %s is %s", what, eventType, stateKey, roomID, raw)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runWorkflowInbox(t *testing.T, kind string) {
	var kimID, nurseID, serverName string
	e, nurse, _, ctx := linkedClockEnv(t, kind, func(cfg map[string]any) {
		serverName = cfg["homeserver"].(map[string]any)["domain"].(string)
		kimID, nurseID = "@kim:"+serverName, "@nurse:"+serverName
		cfg["network"].(map[string]any)["teams"] = []any{
			map[string]any{"name": "Triage", "members": []any{nurseID, kimID}, "numbers": []any{clinicPhone}},
			// Another number's team is not invited.
			map[string]any{"name": "Billing", "members": []any{"@billing:" + serverName}, "numbers": []any{"+15550009999"}},
		}
	})
	e.hs.CreateUser(t, "kim", "kim-password-1")
	rs := roomState{t: t, hsURL: e.hs.URL(), token: matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1")}
	conversationState := func(roomID, what string, check func(map[string]any) bool) map[string]any {
		t.Helper()
		return rs.await(ctx, roomID, "com.carebridge.conversation", "", what, check)
	}
	topic := func(roomID string) string {
		content := rs.find(roomID, "m.room.topic", "")
		s, _ := content["topic"].(string)
		return s
	}
	text := func(from, body string) string {
		t.Helper()
		res, err := e.fake.SendInbound(ctx, from, clinicPhone, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
		m, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == body })
		require.NoError(t, err)
		return m.RoomID
	}
	noticeIn := func(roomID, contains string) testenv.AgentMessage {
		t.Helper()
		m, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
			return m.RoomID == roomID && m.MsgType == "m.notice" && strings.Contains(m.Body, contains)
		})
		require.NoError(t, err, "notice containing %q", contains)
		return m
	}
	command := func(roomID, cmd string) {
		t.Helper()
		_, _, err := nurse.Send(ctx, roomID, cmd)
		require.NoError(t, err)
	}

	// A new conversation invites the team (kim is on no staff_invites list) and is a child
	// of the team's space, which the bridge created and invited the team to.
	roomID := text(patient, "Hi, my son has a rash since this morning.")
	member := rs.find(roomID, "m.room.member", kimID)
	require.NotNil(t, member, "the team member is invited")
	assert.Equal(t, "invite", member["membership"])
	assert.Nil(t, rs.find(roomID, "m.room.member", "@billing:"+serverName), "another number's team is not invited")
	var spaceID string
	for _, evt := range rs.get(roomID) {
		if evt.Type == "m.space.parent" {
			spaceID = evt.StateKey
			assert.Equal(t, true, evt.Content["canonical"])
		}
	}
	require.NotEmpty(t, spaceID, "the room names the team space as its parent")
	_, err := nurse.WaitJoined(ctx, spaceID)
	require.NoError(t, err, "the team member is invited to the team space")
	create := rs.find(spaceID, "m.room.create", "")
	assert.Equal(t, "m.space", create["type"])
	child := rs.find(spaceID, "m.space.child", roomID)
	require.NotNil(t, child, "the conversation is a child of the team space")
	assert.Equal(t, []any{serverName}, child["via"])
	assert.Equal(t, "5-open", child["order"])
	assert.Equal(t, "invite", rs.find(spaceID, "m.room.member", kimID)["membership"])
	spaceOrder := func(roomID, order string) {
		t.Helper()
		rs.await(ctx, spaceID, "m.space.child", roomID, "space order "+order, func(c map[string]any) bool { return c["order"] == order })
	}

	// take / assign / unassign: state event, topic, notice.
	command(roomID, "!sms take")
	noticeIn(roomID, "took this conversation")
	conversationState(roomID, "taken", func(c map[string]any) bool { return c["assignee"] == nurseID })
	assert.Contains(t, topic(roomID), "· assigned to ")
	assert.Contains(t, topic(roomID), "nurse")

	command(roomID, "!sms assign kim")
	noticeIn(roomID, `"kim" is not a Matrix ID`)
	command(roomID, "!sms assign "+kimID)
	noticeIn(roomID, "assigned this conversation to ")
	conversationState(roomID, "assigned", func(c map[string]any) bool { return c["assignee"] == kimID })
	assert.Contains(t, topic(roomID), "· assigned to ")
	assert.Contains(t, topic(roomID), "kim")

	// The assignee is mentioned on the next patient text, once in a burst.
	isMention := func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && m.MsgType == "m.notice" && strings.Contains(m.Body, "New message from the patient for "+kimID)
	}
	mentions := func() int {
		n := 0
		for _, m := range nurse.Messages() {
			if isMention(m) {
				n++
			}
		}
		return n
	}
	text(patient, "It is spreading to his arms.")
	first, err := nurse.WaitMessage(ctx, isMention)
	require.NoError(t, err)
	text(patient, "And he has a slight fever.")
	e.br.SetClock(2 * time.Minute)
	text(patient, "Should we come in?")
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return isMention(m) && m.EventID != first.EventID })
	require.NoError(t, err)
	assert.Equal(t, 2, mentions(), "one mention for the burst, one after a minute")

	command(roomID, "!sms unassign")
	noticeIn(roomID, "unassigned this conversation")
	conversationState(roomID, "unassigned", func(c map[string]any) bool { _, set := c["assignee"]; return !set })
	assert.NotContains(t, topic(roomID), "assigned to")

	// urgent / routine: state, topic, 🚨 in the name, first in the team space.
	plainName := rs.find(roomID, "m.room.name", "")["name"]
	require.NotEmpty(t, plainName)
	command(roomID, "!sms urgent")
	noticeIn(roomID, "marked this conversation urgent")
	conversationState(roomID, "urgent", func(c map[string]any) bool { return c["urgent"] == true })
	assert.Equal(t, "🚨 "+plainName.(string), rs.find(roomID, "m.room.name", "")["name"])
	assert.Contains(t, topic(roomID), "🚨 urgent")
	spaceOrder(roomID, "0-urgent")
	command(roomID, "!sms routine")
	noticeIn(roomID, "marked this conversation routine")
	conversationState(roomID, "routine", func(c map[string]any) bool { return c["urgent"] == false })
	assert.Equal(t, plainName, rs.find(roomID, "m.room.name", "")["name"])
	spaceOrder(roomID, "5-open")

	// The inbox: unassigned first, urgent first among them; the assigned one last.
	const urgentPatient, plainPatient = "+15557650002", "+15557650003"
	urgentRoom := text(urgentPatient, "Question about my appointment.")
	plainRoom := text(plainPatient, "Can I get a refill?")
	command(urgentRoom, "!sms urgent")
	noticeIn(urgentRoom, "marked this conversation urgent")
	command(roomID, "!sms assign "+kimID)
	conversationState(roomID, "assigned again", func(c map[string]any) bool { return c["assignee"] == kimID })
	command(roomID, "!sms inbox")
	inbox := noticeIn(roomID, "Open conversations (3)")
	lines := strings.Split(inbox.Body, "\n")
	require.Len(t, lines, 4, inbox.Body)
	assert.Contains(t, lines[1], "0002")
	assert.Contains(t, lines[1], "🚨 urgent")
	assert.Contains(t, lines[1], "unassigned")
	assert.Contains(t, lines[1], "https://matrix.to/#/"+url.PathEscape(urgentRoom))
	assert.Contains(t, lines[2], "0003")
	assert.Contains(t, lines[2], "waiting ")
	assert.Contains(t, lines[2], url.PathEscape(plainRoom))
	assert.Contains(t, lines[3], "4567")
	assert.Contains(t, lines[3], "assigned to ")
	assert.Contains(t, lines[3], "kim")
	assert.NotContains(t, lines[3], "waiting 0m", "the first text waits since before the clock moved 2 minutes")

	// close: state, last in the space, off the inbox; the patient's next text reopens it.
	command(roomID, "!sms close")
	noticeIn(roomID, "closed this conversation")
	conversationState(roomID, "closed", func(c map[string]any) bool { return c["closed"] == true })
	spaceOrder(roomID, "9-closed")
	assert.Contains(t, topic(roomID), "· closed")
	command(roomID, "!sms inbox")
	inbox = noticeIn(roomID, "Open conversations (2)")
	assert.NotContains(t, inbox.Body, "4567")

	text(patient, "Thanks, he is better now.")
	noticeIn(roomID, "Reopened: the patient wrote again")
	conversationState(roomID, "reopened", func(c map[string]any) bool { return c["closed"] == false })
	spaceOrder(roomID, "5-open")
	assert.NotContains(t, topic(roomID), "closed")

	// Staff reopen a closed conversation themselves: `!sms reopen`.
	command(roomID, "!sms reopen")
	noticeIn(roomID, "This conversation is not closed.")
	command(roomID, "!sms close")
	conversationState(roomID, "closed again", func(c map[string]any) bool { return c["closed"] == true })
	spaceOrder(roomID, "9-closed")
	command(roomID, "!sms reopen")
	noticeIn(roomID, "reopened this conversation: it is in the inbox again")
	conversationState(roomID, "reopened by staff", func(c map[string]any) bool { return c["closed"] == false })
	spaceOrder(roomID, "5-open")
	assert.NotContains(t, topic(roomID), "closed")
	command(roomID, "!sms inbox")
	inbox = noticeIn(roomID, "Open conversations (3)")
	assert.Contains(t, inbox.Body, "4567")
	assert.Equal(t, []string{"patient|ok|", nurseID + "|ok|"}, auditRows(t, e.db, "reopened"))

	// The team space is kept across restarts: a conversation after one joins the same space.
	e.br.Stop()
	e.br.Restart()
	laterRoom := text("+15557650004", "Hello, is the clinic open on Saturday?")
	rs.await(ctx, laterRoom, "m.space.parent", spaceID, "same team space after a restart", func(map[string]any) bool { return true })
	spaceOrder(laterRoom, "5-open")
}
