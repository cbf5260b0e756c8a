//go:build e2eepatient

package e2ee

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func timelineEvent(room, typ, stateKey, eventID, content string) string {
	sk := ""
	if stateKey != "" {
		sk = `"state_key":"` + stateKey + `",`
	}
	return `{"type":"` + typ + `",` + sk + `"sender":"` + string(nurse) + `","event_id":"` + eventID + `","room_id":"` + room +
		`","origin_server_ts":1796649958823,"content":` + content + `,"unsigned":{"age":12}}`
}

type filedEvent struct {
	Type     string          `json:"type"`
	EventID  string          `json:"event_id"`
	RoomID   string          `json:"room_id"`
	StateKey *string         `json:"state_key"`
	Sender   string          `json:"sender"`
	TS       int64           `json:"origin_server_ts"`
	Content  json.RawMessage `json:"content"`
}

// The secure room's timeline events of the kinds the page's crypto needs are filed, in order and
// with their content as the homeserver sent it, for every device of that room's patient; other
// rooms' events, other kinds and events before the room was named are not.
func TestSecureRoomEventsAreFiledForThePatientsDevices(t *testing.T) {
	h := newInboxHarness(t, 0)
	encrypted := `{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"` + sentinel + `","session_id":"sess1","device_id":"NURSEDEV","sender_key":"k"}`
	h.file(t, `{"events":[`+timelineEvent(string(secureRoom), "m.room.encrypted", "", "$before", encrypted)+`]}`)
	a, cur := h.next(t, devA, "")
	assert.Empty(t, a.RoomEvents, "no secure room named yet")

	h.in.SetSecureRoom(patientUser, secureRoom)
	h.file(t, `{"events":[`+
		timelineEvent(string(secureRoom), "m.room.member", string(nurse), "$join", `{"membership":"join"}`)+`,`+
		timelineEvent(string(secureRoom), "m.room.encrypted", "", "$msg", encrypted)+`,`+
		timelineEvent(string(secureRoom), "m.room.message", "", "$plain", `{"msgtype":"m.text","body":"x"}`)+`,`+
		timelineEvent(string(secureRoom), "m.reaction", "", "$react", `{}`)+`,`+
		timelineEvent(string(smsRoom), "m.room.encrypted", "", "$sms", encrypted)+`]}`)
	for _, d := range []Device{devA, devA2} {
		b, _ := h.next(t, d, cur)
		require.Len(t, b.RoomEvents, 2, "the member event and the encrypted message, for %s", d.ID)
		var got []filedEvent
		for _, raw := range b.RoomEvents {
			var one filedEvent
			require.NoError(t, json.Unmarshal(raw, &one))
			got = append(got, one)
		}
		assert.Equal(t, "$join", got[0].EventID)
		assert.Equal(t, "m.room.member", got[0].Type)
		require.NotNil(t, got[0].StateKey)
		assert.Equal(t, string(nurse), *got[0].StateKey)
		assert.Equal(t, "$msg", got[1].EventID)
		assert.Equal(t, "m.room.encrypted", got[1].Type)
		assert.Nil(t, got[1].StateKey, "a message has no state_key")
		assert.Equal(t, string(secureRoom), got[1].RoomID)
		assert.Equal(t, string(nurse), got[1].Sender)
		assert.Equal(t, int64(1796649958823), got[1].TS)
		assert.JSONEq(t, encrypted, string(got[1].Content))
		assert.Equal(t, encrypted, string(got[1].Content), "the content as the homeserver sent it")
	}
	b, _ := h.next(t, devB, "")
	assert.Empty(t, b.RoomEvents, "another patient's device gets none of it")
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"room_events":[]`)
}
