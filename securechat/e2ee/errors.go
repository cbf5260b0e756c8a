//go:build e2eepatient

package e2ee

import (
	"encoding/json"
	"net/http"
)

// denial is a refusal the proxy answers itself. msg goes to the browser as the Matrix error
// and says what is not allowed, never what the request held; reason is a short stable token
// for the log, so the log says why without the body.
type denial struct {
	status  int
	errcode string
	msg     string
	reason  string
}

func forbid(reason, msg string) *denial {
	return &denial{status: http.StatusForbidden, errcode: "M_FORBIDDEN", msg: msg, reason: reason}
}

var (
	errNotAllowed = forbid("endpoint_not_allowed",
		"This endpoint is not allowed through the patient proxy: only key upload, key query and claim "+
			"for members of the secure room, to-device messages to them, encrypted sends and receipts "+
			"in the secure room and the dehydrated device are.")
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
	errUIA = forbid("uia",
		"Interactive authentication is not available through the patient proxy.")

	errNotJSON = &denial{status: http.StatusBadRequest, errcode: "M_NOT_JSON", reason: "not_json",
		msg: "The request body is not the JSON object this endpoint takes."}
	errEventID = &denial{status: http.StatusBadRequest, errcode: "M_INVALID_PARAM", reason: "event_id",
		msg: "The receipt does not name an event ID."}
	errBodyNotEmpty = &denial{status: http.StatusBadRequest, errcode: "M_BAD_JSON", reason: "body_not_empty",
		msg: "This endpoint takes no request body."}
	errTooLarge = &denial{status: http.StatusRequestEntityTooLarge, errcode: "M_TOO_LARGE", reason: "too_large",
		msg: "The request body is larger than the patient proxy accepts."}
	errMethod = &denial{status: http.StatusMethodNotAllowed, errcode: "M_UNRECOGNIZED", reason: "method",
		msg: "This method is not allowed through the patient proxy."}
	errMembers = &denial{status: http.StatusBadGateway, errcode: "M_UNKNOWN", reason: "members_unavailable",
		msg: "The secure room's members could not be read; try again."}
	errUpstream = &denial{status: http.StatusBadGateway, errcode: "M_UNKNOWN", reason: "upstream_unreachable",
		msg: "The homeserver could not be reached; try again."}
)

func (d *denial) write(rw http.ResponseWriter) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(d.status)
	_ = json.NewEncoder(rw).Encode(map[string]string{"errcode": d.errcode, "error": d.msg})
}
