package main

import (
	"net/url"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestBridgeUsersCollectNoNotifications: the bridge's own users (its bot and the ghosts in
// a conversation room: the patient's, the clinic number's) have their notifications turned
// off, so the homeserver stores none for them as staff and patients write; the nurse still
// gets hers in the same room.
func TestBridgeUsersCollectNoNotifications(t *testing.T) {
	eachHomeserver(t, runBridgeUsersCollectNoNotifications)
}

func runBridgeUsersCollectNoNotifications(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	nurseToken := matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1")
	as := string(asToken(t, e))

	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Is the clinic open on Saturday?")
	require.NoError(t, err)
	first, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Is the clinic open on Saturday?" })
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, first.RoomID, "Yes, from 9 to 12.")
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Thank you")
	require.NoError(t, err)
	last, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Thank you" })
	require.NoError(t, err)

	// The nurse's notifications show the room notifies: the patient's texts are there.
	assert.Eventually(t, func() bool {
		return notifiedOf(t, e.hs.URL(), nurseToken, "", last.EventID)
	}, 30*time.Second, 200*time.Millisecond, "the nurse is notified of the patient's text")

	var members struct {
		Joined map[string]any `json:"joined"`
	}
	matrixGet(t, e.hs.URL(), nurseToken, "/_matrix/client/v3/rooms/"+url.PathEscape(first.RoomID)+"/joined_members", &members)
	var bridgeUsers []string
	for user := range members.Joined {
		if user != e.nurseID && user != e.adminID {
			bridgeUsers = append(bridgeUsers, user)
		}
	}
	assert.Contains(t, bridgeUsers, first.Sender, "the patient's ghost is in the room")
	assert.GreaterOrEqual(t, len(bridgeUsers), 3, "the bot and the two ghosts are in the room: %v", bridgeUsers)
	for _, user := range bridgeUsers {
		var master struct {
			Enabled bool `json:"enabled"`
		}
		matrixGet(t, e.hs.URL(), as, "/_matrix/client/v3/pushrules/global/override/.m.rule.master?user_id="+url.QueryEscape(user), &master)
		assert.True(t, master.Enabled, "%s has its notifications off", user)
		assert.False(t, notifiedOf(t, e.hs.URL(), as, user, ""), "%s collected no notification", user)
	}
}

// notifiedOf tells whether a user's notifications (the appservice's user_id when asUser is
// set) hold event, or any notification at all when event is empty.
func notifiedOf(t *testing.T, hsURL, token, asUser, event string) bool {
	t.Helper()
	path := "/_matrix/client/v3/notifications"
	if asUser != "" {
		path += "?user_id=" + url.QueryEscape(asUser)
	}
	var resp struct {
		Notifications []struct {
			Event struct {
				EventID string `json:"event_id"`
			} `json:"event"`
		} `json:"notifications"`
	}
	matrixGet(t, hsURL, token, path, &resp)
	for _, n := range resp.Notifications {
		if event == "" || n.Event.EventID == event {
			return true
		}
	}
	return false
}

// asToken is the appservice's as_token, from the registration the bridge generated.
func asToken(t *testing.T, e *env) []byte {
	t.Helper()
	reg, err := os.ReadFile(e.br.RegistrationPath)
	require.NoError(t, err)
	token := regexp.MustCompile(`(?m)^as_token:\s*"?([^"\s]+)`).FindSubmatch(reg)
	require.NotNil(t, token)
	return token[1]
}
