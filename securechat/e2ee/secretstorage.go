//go:build e2eepatient

package e2ee

import (
	"strings"

	"maunium.net/go/mautrix/id"
)

// Secret storage (SSSS, the spec's m.secret_storage.v1.aes-hmac-sha2): the page keeps the
// patient's cross-signing private keys in the patient-web user's own account data, encrypted
// under a key derived from the passkey's PRF output, where Element keeps them too (under a
// recovery key). A new browser restoring with the passkey reads them back, imports them and
// signs its own device, so staff who exclude insecure devices share room keys with it. The
// proxy passes only these account data types, only of the patient-web user, only in the
// encrypted shapes the spec gives them; everything else of account data (the user's other
// settings, any room's) stays refused.

const (
	ssssAlgorithm  = "m.secret_storage.v1.aes-hmac-sha2"
	ssssDefaultKey = "m.secret_storage.default_key"
	ssssKeyPrefix  = "m.secret_storage.key."
)

// crossSigningSecrets are the secrets the page stores: the three private cross-signing keys.
var crossSigningSecrets = map[string]bool{
	"m.cross_signing.master":       true,
	"m.cross_signing.self_signing": true,
	"m.cross_signing.user_signing": true,
}

// accountDataKind says which of the allowed account data types name is, or "" for any other.
func accountDataKind(name string) string {
	switch {
	case name == ssssDefaultKey:
		return "default_key"
	case strings.HasPrefix(name, ssssKeyPrefix) && len(name) > len(ssssKeyPrefix):
		return "key"
	case crossSigningSecrets[name]:
		return "secret"
	}
	return ""
}

// checkAccountDataTarget: the path names the patient-web user itself and an allowed type.
func (p *Proxy) checkAccountDataTarget(c *call) (string, *denial) {
	if id.UserID(c.vars[0]) != p.cfg.UserID {
		return "", errOtherUser
	}
	kind := accountDataKind(c.vars[1])
	if kind == "" {
		return "", errAccountDataType
	}
	return kind, nil
}

// checkAccountDataGet: a restoring page reads the patient's secret storage.
func (p *Proxy) checkAccountDataGet(c *call) (any, *denial) {
	if _, d := p.checkAccountDataTarget(c); d != nil {
		return nil, d
	}
	return p.checkNoBody(c)
}

type ssssDefaultKeyBody struct {
	Key string `json:"key"`
}

// ssssKeyBody describes a secret storage key: its algorithm and the check value (the
// encryption of 32 zero bytes). No passphrase: the key comes from the passkey.
type ssssKeyBody struct {
	Algorithm string `json:"algorithm"`
	Name      string `json:"name,omitempty"`
	IV        string `json:"iv"`
	MAC       string `json:"mac"`
}

type ssssEncrypted struct {
	IV         string `json:"iv"`
	Ciphertext string `json:"ciphertext"`
	MAC        string `json:"mac"`
}

type ssssSecretBody struct {
	Encrypted map[string]ssssEncrypted `json:"encrypted"`
}

// checkAccountDataPut: an enrolling page stores the patient's secret storage key description,
// its default key and the three cross-signing keys encrypted under it. A secret must be
// encrypted (iv, ciphertext and mac for at least one key, nothing else), so a page cannot put
// a private key there in clear by mistake.
func (p *Proxy) checkAccountDataPut(c *call) (any, *denial) {
	kind, d := p.checkAccountDataTarget(c)
	if d != nil {
		return nil, d
	}
	switch kind {
	case "default_key":
		var b ssssDefaultKeyBody
		if d := decodeStrict(c.body, &b); d != nil {
			return nil, d
		}
		if b.Key == "" {
			return nil, errSecretShape
		}
		return &b, nil
	case "key":
		var b ssssKeyBody
		if d := decodeStrict(c.body, &b); d != nil {
			return nil, d
		}
		if b.Algorithm != ssssAlgorithm || b.IV == "" || b.MAC == "" {
			return nil, errSecretShape
		}
		return &b, nil
	default:
		var b ssssSecretBody
		if d := decodeStrict(c.body, &b); d != nil {
			return nil, d
		}
		if len(b.Encrypted) == 0 {
			return nil, errSecretShape
		}
		for keyID, e := range b.Encrypted {
			if keyID == "" || e.IV == "" || e.Ciphertext == "" || e.MAC == "" {
				return nil, errSecretShape
			}
		}
		return &b, nil
	}
}
