package bridge

import (
	"maunium.net/go/mautrix/bridgev2/matrix"

	"github.com/carebridge/carebridge/appservice"
)

// resetSessionOnOutage hands the Matrix connector's appservice client and its crypto helper
// to appservice.ResetSessionOnOutage: an encrypted send that fails at the homeserver drops
// the room's outbound group session (sessionreset.go there says why).
func resetSessionOnOutage(mc *matrix.Connector) {
	if mc == nil || mc.AS == nil || mc.AS.HTTPClient == nil {
		return
	}
	appservice.ResetSessionOnOutage(mc.AS.HTTPClient, func() appservice.SessionResetter {
		if mc.Crypto == nil {
			return nil
		}
		return mc.Crypto
	})
}
