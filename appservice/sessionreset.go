package appservice

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// SessionResetter drops a room's outbound group session, so that the room's next encrypted
// message shares a new one (bridgev2's matrix.Crypto does).
type SessionResetter interface {
	ResetSession(ctx context.Context, roomID id.RoomID)
}

// ResetSessionOnOutage makes the appservice's HTTP client drop a room's outbound group
// session when an encrypted send into that room fails because the homeserver is
// unreachable or failing (a network error or a 5xx answer). crypto is asked at each such
// failure (the bridge's crypto helper is set up after the client); nil means no encryption.
//
// The send may be the first under a session the bot shared just before: a homeserver
// that goes down right after accepting the to-device share can lose it (measured with
// Dendrite: staff then could never decrypt that text, sent again after the outage under
// the same session, and the bot refuses key requests from devices that are not
// cross-signed). With the session dropped, the next attempt shares a new one.
func ResetSessionOnOutage(client *http.Client, crypto func() SessionResetter) {
	if client == nil {
		return
	}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client.Transport = &sessionResetTransport{base: base, crypto: crypto}
}

type sessionResetTransport struct {
	base   http.RoundTripper
	crypto func() SessionResetter
}

func (t *sessionResetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode < http.StatusInternalServerError {
		return resp, err
	}
	if roomID := encryptedSendRoom(req); roomID != "" {
		if crypto := t.crypto(); crypto != nil {
			zerolog.Ctx(req.Context()).Debug().Stringer("room_id", roomID).
				Msg("Encrypted send failed at the homeserver; the room's next message shares a new group session")
			crypto.ResetSession(req.Context(), roomID)
		}
	}
	return resp, err
}

// encryptedSendRoom returns the room of a PUT /rooms/{roomId}/send/m.room.encrypted/{txnId}
// request, or "" for any other request.
func encryptedSendRoom(req *http.Request) id.RoomID {
	if req.Method != http.MethodPut {
		return ""
	}
	path := req.URL.EscapedPath()
	_, rest, ok := strings.Cut(path, "/_matrix/client/")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	// v3, rooms, {roomId}, send, m.room.encrypted, {txnId}
	if len(parts) != 6 || parts[1] != "rooms" || parts[3] != "send" || parts[4] != "m.room.encrypted" {
		return ""
	}
	roomID, err := url.PathUnescape(parts[2])
	if err != nil || !strings.HasPrefix(roomID, "!") {
		return ""
	}
	return id.RoomID(roomID)
}
