package appservice

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

func TestEncryptedSendRoom(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           id.RoomID
	}{
		{"PUT", "/_matrix/client/v3/rooms/%21abc:localhost/send/m.room.encrypted/txn1?user_id=%40x%3Ay", "!abc:localhost"},
		{"PUT", "/_matrix/client/v3/rooms/!abc:localhost/send/m.room.encrypted/txn1", "!abc:localhost"},
		{"PUT", "/_matrix/client/v3/rooms/%21abc:localhost/send/m.room.message/txn1", ""},
		{"PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/txn1", ""},
		{"PUT", "/_matrix/client/v3/rooms/%21abc:localhost/state/m.room.encrypted/", ""},
		{"GET", "/_matrix/client/v3/rooms/%21abc:localhost/send/m.room.encrypted/txn1", ""},
		{"PUT", "/_matrix/client/v3/rooms/%23alias:localhost/send/m.room.encrypted/txn1", ""},
	} {
		req := httptest.NewRequest(tc.method, "http://hs"+tc.target, nil)
		if got := encryptedSendRoom(req); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.method, tc.target, got, tc.want)
		}
	}
}

// resets records the rooms whose group session was dropped.
type resets struct{ rooms []id.RoomID }

func (r *resets) ResetSession(_ context.Context, roomID id.RoomID) { r.rooms = append(r.rooms, roomID) }

func TestAnEncryptedSendTheHomeserverFailsDropsTheRoomsSession(t *testing.T) {
	status := http.StatusBadGateway
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer hs.Close()
	var got resets
	var crypto SessionResetter // not set up yet when the client is wrapped
	client := &http.Client{}
	ResetSessionOnOutage(client, func() SessionResetter { return crypto })
	send := func(path string) {
		req, err := http.NewRequest(http.MethodPut, hs.URL+path, strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	send("/_matrix/client/v3/rooms/%21a:localhost/send/m.room.encrypted/t1")
	assert.Empty(t, got.rooms, "no crypto helper yet: nothing to reset")

	crypto = &got
	send("/_matrix/client/v3/rooms/%21a:localhost/send/m.room.encrypted/t2")
	send("/_matrix/client/v3/rooms/%21a:localhost/send/m.room.message/t3")
	status = http.StatusOK
	send("/_matrix/client/v3/rooms/%21b:localhost/send/m.room.encrypted/t4")
	assert.Equal(t, []id.RoomID{"!a:localhost"}, got.rooms, "only the encrypted send the homeserver failed")
}
