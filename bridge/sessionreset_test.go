package bridge

import (
	"net/http/httptest"
	"testing"

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
