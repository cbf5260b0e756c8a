package bridge

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/id"
)

// resetSessionOnOutage makes the appservice's HTTP client drop a room's outbound group
// session when an encrypted send into that room fails because the homeserver is
// unreachable or failing (a network error or a 5xx answer).
//
// The send may be the first under a session the bot shared just before: a homeserver
// that goes down right after accepting the to-device share can lose it (measured with
// Dendrite: staff then could never decrypt that text, sent again after the outage under
// the same session, and the bot refuses key requests from devices that are not
// cross-signed). With the session dropped, the next attempt shares a new one.
func resetSessionOnOutage(mc *matrix.Connector) {
	if mc == nil || mc.AS == nil || mc.AS.HTTPClient == nil {
		return
	}
	client := mc.AS.HTTPClient
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client.Transport = &sessionResetTransport{base: base, mc: mc}
}

type sessionResetTransport struct {
	base http.RoundTripper
	mc   *matrix.Connector
}

func (t *sessionResetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode < http.StatusInternalServerError {
		return resp, err
	}
	if roomID := encryptedSendRoom(req); roomID != "" && t.mc.Crypto != nil {
		zerolog.Ctx(req.Context()).Debug().Stringer("room_id", roomID).
			Msg("Encrypted send failed at the homeserver; the room's next message shares a new group session")
		t.mc.Crypto.ResetSession(req.Context(), roomID)
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
