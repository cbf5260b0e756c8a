package bridge

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
)

// IDs: a clinic number's login is its E.164 number without the "+" (15550001111), and so
// is a portal (one conversation, keyed by the patient's number at a login): neither leaves
// the bridge, since FillPortalBridgeInfo puts the patient's ghost ID in the room's bridge
// info instead. A patient's ghost is an opaque random ID mapped to the number in the
// database (patient_ghost): its Matrix ID (@sms_p…) is in every event the patient sends,
// which every server in the room and every client sees.

// patientIDPrefix starts every patient ghost ID: a letter, so no ID is taken for a number
// (logmask masks digits after "sms_"), and the old ghosts named by the number stand apart.
const patientIDPrefix = "p"

// patientIDEncoding writes a patient ghost ID's random bytes in what a Matrix localpart
// allows unescaped.
var patientIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// patientIDBytes is an ID's randomness: 80 bits, beyond guessing or collision for any
// number of patients one bridge will ever see.
const patientIDBytes = 10

var patientIDLength = len(patientIDPrefix) + patientIDEncoding.EncodedLen(patientIDBytes)

// newPatientID draws a new patient ghost ID from crypto/rand.
func newPatientID() networkid.UserID {
	buf := make([]byte, patientIDBytes)
	_, _ = rand.Read(buf) // never fails (crypto/rand panics rather than return short)
	return networkid.UserID(patientIDPrefix + patientIDEncoding.EncodeToString(buf))
}

// IsPatientID says whether a ghost ID has the shape of a patient's opaque ID (whether it
// is one is for the database to say).
func IsPatientID(id networkid.UserID) bool {
	s := string(id)
	if len(s) != patientIDLength || !strings.HasPrefix(s, patientIDPrefix) {
		return false
	}
	// Byte by byte: base32's decoder skips line breaks and takes bytes outside the alphabet
	// (found by FuzzIsPatientID).
	for i := len(patientIDPrefix); i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// patientUserID is the ghost ID of a patient number, made (and stored) on first use.
func (c *Connector) patientUserID(ctx context.Context, e164 string) (networkid.UserID, error) {
	id, err := c.DB.PatientGhosts().EnsureGhostID(ctx, e164, string(newPatientID()), c.now())
	if err != nil {
		return "", fmt.Errorf("failed to get the patient's ghost ID: %w", err)
	}
	return networkid.UserID(id), nil
}

// patientPhoneOf is the patient number (E.164) of a ghost ID, or "" when the ID is no
// patient's.
func (c *Connector) patientPhoneOf(ctx context.Context, id networkid.UserID) (string, error) {
	if !IsPatientID(id) {
		return "", nil
	}
	phone, err := c.DB.PatientGhosts().Phone(ctx, string(id))
	if err != nil {
		return "", fmt.Errorf("failed to read the patient's number: %w", err)
	}
	return phone, nil
}

// legacyPatientUserID is the ghost ID a patient number had before ghost IDs were opaque
// (schema version 11): the number's digits. Only retiring those ghosts uses it.
func legacyPatientUserID(e164 string) networkid.UserID {
	return networkid.UserID(strings.TrimPrefix(e164, "+"))
}

// MakeClinicUserID is the sender ID of the clinic number itself (the login's own messages).
func MakeClinicUserID(e164 string) networkid.UserID {
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

// PhoneOf turns a portal ID back into the patient's number (E.164).
func PhoneOf(id networkid.PortalID) string {
	return "+" + string(id)
}

// patientGhost is the ghost of a patient number.
func (c *Connector) patientGhost(ctx context.Context, e164 string) (*bridgev2.Ghost, error) {
	id, err := c.patientUserID(ctx, e164)
	if err != nil {
		return nil, err
	}
	ghost, err := c.Bridge.GetGhostByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("failed to get patient ghost: %w", err)
	}
	return ghost, nil
}
