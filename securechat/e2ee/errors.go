//go:build e2eepatient

package e2ee

import (
	"net/http"

	"maunium.net/go/mautrix"
)

// denial is a refusal the proxy answers itself. msg goes to the browser as the Matrix error
// and says what is not allowed, never what the request held; reason is a short stable token
// for the log, so the log says why without the body.
type denial struct {
	mautrix.RespError
	reason string
}

func deny(err mautrix.RespError, reason, msg string) *denial {
	return &denial{RespError: err.WithMessage(msg), reason: reason}
}

func forbid(reason, msg string) *denial { return deny(mautrix.MForbidden, reason, msg) }

var (
	errNotAllowed = forbid("endpoint_not_allowed",
		"This endpoint is not allowed through the patient proxy: only key upload, key query and claim "+
			"for members of the secure room, to-device messages to them, encrypted sends and receipts "+
			"in the secure room, the dehydrated device and the patient's own secret storage are.")
	errNoDevice = forbid("no_patient_device",
		"This session has no patient device the proxy knows.")
	errOtherRoom = forbid("other_room",
		"Only the secure room can be used through the patient proxy.")
	errNotEncrypted = forbid("not_encrypted",
		"Only m.room.encrypted events (Megolm) can be sent into the secure room.")
	errNonMember = forbid("non_member",
		"Only members of the secure room can be named.")
	errOtherUser = forbid("other_user",
		"Only the patient's own keys and devices can be changed.")
	errOtherDevice = forbid("other_device",
		"Only this session's own device can upload its keys.")
	errToDeviceType = forbid("to_device_type",
		"This to-device message type is not allowed through the patient proxy.")
	errReceiptType = forbid("receipt_type",
		"Only m.read and m.read.private receipts are allowed.")
	errUnknownField = forbid("unknown_field",
		"The request has a field the patient proxy does not allow.")
	errClaimAlgorithm = forbid("claim_algorithm",
		"Only signed_curve25519 one-time keys can be claimed.")
	errAccountDataType = forbid("account_data_type",
		"Only the patient's secret storage (m.secret_storage.*) and cross-signing keys (m.cross_signing.*) "+
			"can be read or stored as account data.")
	errSecretShape = forbid("secret_shape",
		"Secret storage takes only an aes-hmac-sha2 key description, its default key and secrets encrypted under it.")
	errUIA = forbid("uia",
		"Interactive authentication is not available through the patient proxy.")

	errNotJSON = deny(mautrix.MNotJSON, "not_json",
		"The request body is not the JSON object this endpoint takes.")
	errEventID = deny(mautrix.MInvalidParam, "event_id",
		"The receipt does not name an event ID.")
	errBodyNotEmpty = deny(mautrix.MBadJSON, "body_not_empty",
		"This endpoint takes no request body.")
	errTooLarge = deny(mautrix.MTooLarge, "too_large",
		"The request body is larger than the patient proxy accepts.")
	errMethod = deny(mautrix.MUnrecognized.WithStatus(http.StatusMethodNotAllowed), "method",
		"This method is not allowed through the patient proxy.")
	errMembers = deny(mautrix.MUnknown.WithStatus(http.StatusBadGateway), "members_unavailable",
		"The secure room's members could not be read; try again.")
	errUpstream = deny(mautrix.MUnknown.WithStatus(http.StatusBadGateway), "upstream_unreachable",
		"The homeserver could not be reached; try again.")
)

func (d *denial) write(rw http.ResponseWriter) {
	rw.Header().Set("Cache-Control", "no-store")
	d.RespError.Write(rw)
}
