package bridge

import (
	"strings"

	"maunium.net/go/mautrix/bridgev2/networkid"
)

// IDs are the E.164 number without its "+": ghost sms_15551234567, login 15550001111.

// MakeUserID is the ghost ID of a phone number.
func MakeUserID(e164 string) networkid.UserID {
	return networkid.UserID(strings.TrimPrefix(e164, "+"))
}

// MakeLoginID is the login ID of a clinic number.
func MakeLoginID(e164 string) networkid.UserLoginID {
	return networkid.UserLoginID(strings.TrimPrefix(e164, "+"))
}

// MakePortalKey is the portal of one conversation: a patient number at a clinic number.
func MakePortalKey(patientE164 string, loginID networkid.UserLoginID) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(strings.TrimPrefix(patientE164, "+")), Receiver: loginID}
}

// PhoneOf turns a ghost or portal ID back into E.164.
func PhoneOf[T ~string](id T) string {
	return "+" + string(id)
}
