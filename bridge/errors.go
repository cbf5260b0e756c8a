package bridge

import "errors"

// Named errors of the bridge package.
var (
	ErrPublicAddressMissing = errors.New("appservice.public_address is not set: set it (or network.twilio.public_url_override) to the public https URL where Twilio reaches the bridge, then link the number again")
	ErrEncryptionNotBuilt   = errors.New("encryption.require is true but this carebridge binary was built without encryption: build with `make build` (cgo and -tags goolm)")
	ErrUnsupportedMessage   = errors.New("message type cannot be sent by SMS")
	ErrOptedOut             = errors.New("the patient has opted out (STOP): nothing is sent until they text START")
	ErrUnknownLogin         = errors.New("no linked clinic number for this webhook")
)
