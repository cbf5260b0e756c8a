package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// checkpoints collects the message checkpoints bridgev2 posts to
// homeserver.message_send_checkpoint_endpoint: every status it gives a Matrix event.
type checkpoints struct {
	mu   sync.Mutex
	seen []checkpoint
}

type checkpoint struct {
	EventID   string `json:"event_id"`
	RoomID    string `json:"room_id"`
	Step      string `json:"step"`
	Status    string `json:"status"`
	EventType string `json:"event_type"`
	Info      string `json:"info"`
}

func (cs *checkpoints) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Checkpoints []checkpoint `json:"checkpoints"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cs.mu.Lock()
	cs.seen = append(cs.seen, body.Checkpoints...)
	cs.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (cs *checkpoints) all() []checkpoint {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]checkpoint(nil), cs.seen...)
}

// TestStaffJoinsQuietly: a staff member joining a conversation room or a team space is a
// Matrix-only matter: the bridge gives the join no failure status and logs no error for it.
// A staff reply after the joins gets its success status, in the room's order; a patient's
// ghost invited from Matrix is still refused.
func TestStaffJoinsQuietly(t *testing.T) { eachDB(t, runStaffJoinsQuietly) }

func runStaffJoinsQuietly(t *testing.T, kind string) {
	statuses := &checkpoints{}
	collector := httptest.NewServer(statuses)
	t.Cleanup(collector.Close)
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		server := cfg["homeserver"].(map[string]any)["domain"].(string)
		cfg["homeserver"].(map[string]any)["message_send_checkpoint_endpoint"] = collector.URL
		cfg["network"].(map[string]any)["teams"] = []any{
			map[string]any{"name": "Triage", "members": []any{"@nurse:" + server}, "numbers": []any{clinicPhone}},
		}
	})
	rs := roomState{t: t, hsURL: e.hs.URL(), token: matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1")}

	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Hi, can I move my appointment?")
	require.NoError(t, err)
	// The conversation room, not the team space the nurse is invited to as well (either
	// join can come first).
	first, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Hi, can I move my appointment?" })
	require.NoError(t, err)
	roomID := first.RoomID
	var spaceID string
	require.Eventually(t, func() bool {
		for _, evt := range rs.get(roomID) {
			if evt.Type == "m.space.parent" {
				spaceID = evt.StateKey
			}
		}
		return spaceID != ""
	}, 30*time.Second, 100*time.Millisecond, "the room is in the team's space")
	_, err = nurse.WaitJoined(ctx, spaceID)
	require.NoError(t, err, "the nurse joined the team space")
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Hi, can I move my appointment?" })
	require.NoError(t, err)

	// The reply is handled after the join in the room's queue: once its status is in, the
	// join's would be too.
	reply, _, err := nurse.Send(ctx, roomID, "Yes, which day suits you?")
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, cp := range statuses.all() {
			if cp.EventID == reply && cp.Step == "REMOTE" && cp.Status == "SUCCESS" {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the reply's success status reaches the checkpoint endpoint")

	// Every event's every step ends in success. On Dendrite the room key of a new session
	// comes by the bot's /sync while the event comes by the appservice transaction, so the
	// event can arrive first: bridgev2 then reports DECRYPTED WILL_RETRY, waits for the key
	// and reports DECRYPTED SUCCESS (seen once in CI). That is the one retry allowed.
	var retried []checkpoint
	for _, cp := range statuses.all() {
		assert.NotEqual(t, "m.room.member", cp.EventType, "no status for a membership change: %+v", cp)
		switch {
		case cp.Status == "SUCCESS":
		case cp.Step == "DECRYPTED" && cp.Status == "WILL_RETRY" && strings.Contains(cp.Info, "no session with given ID"):
			retried = append(retried, cp)
		default:
			assert.Fail(t, "a status other than success", "%+v", cp)
		}
	}
	for _, cp := range retried {
		assert.Eventually(t, func() bool {
			for _, later := range statuses.all() {
				if later.EventID == cp.EventID && later.Step == cp.Step && later.Status == "SUCCESS" {
					return true
				}
			}
			return false
		}, 30*time.Second, 100*time.Millisecond, "a decryption retried for a late key succeeds: %+v", cp)
	}
	assert.NotContains(t, e.br.Log(), "failed to find preferred login", "bridgev2's error for a staff join")
	assert.NotContains(t, e.br.Log(), "relay not set")
	for _, line := range strings.Split(e.br.Log(), "\n") {
		if strings.Contains(line, `"level":"error"`) && strings.Contains(line, "member") {
			assert.Fail(t, "error about a membership in the bridge log", line)
		}
	}

	// A patient's ghost is still bridgev2's (and refused): staff cannot add another
	// patient's number to the conversation from Matrix.
	other := e.patientGhost(t, ctx, "+15557654321")
	body, _ := json.Marshal(map[string]string{"user_id": other})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		e.hs.URL()+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/invite", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+rs.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		for _, cp := range statuses.all() {
			if cp.EventType == "m.room.member" && cp.Status != "SUCCESS" && strings.Contains(cp.Info, "patients cannot be added") {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the invite of a patient's ghost is refused")
}
