package bridge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	bridgedb "maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/securechat"
)

// UserLoginMetadata is what a linked clinic number keeps in bridgev2's user_login table.
// The Twilio auth token is kept sealed with the secure chat keyring: read it with AuthToken.
type UserLoginMetadata struct {
	AccountSID string `json:"account_sid"`
	// AuthTokenSealed is the auth token sealed with the key AuthTokenKey (base64), bound
	// to the login, so it opens for no other login.
	AuthTokenSealed string `json:"auth_token_sealed,omitempty"`
	AuthTokenKey    string `json:"auth_token_key,omitempty"`
	// PlainAuthToken is the token as versions before sealing kept it; LoadUserLogin seals it.
	PlainAuthToken string `json:"auth_token,omitempty"`
	Phone          string `json:"phone"`     // the clinic number, E.164
	PhoneSID       string `json:"phone_sid"` // Twilio's PN… SID of the number
}

// ErrNoAuthToken means a login's metadata holds no Twilio auth token at all.
var ErrNoAuthToken = errors.New("the linked number has no Twilio auth token: link it again")

// authTokenAdditional binds a sealed auth token to its login.
func authTokenAdditional(loginID networkid.UserLoginID) []byte {
	return []byte("user_login/" + string(loginID) + "/auth_token")
}

// AuthToken returns the login's Twilio auth token, opened with the keyring.
func (m *UserLoginMetadata) AuthToken(keys *securechat.Keyring, loginID networkid.UserLoginID) (string, error) {
	if m.AuthTokenSealed == "" {
		if m.PlainAuthToken == "" {
			return "", ErrNoAuthToken
		}
		return m.PlainAuthToken, nil
	}
	sealed, err := base64.StdEncoding.DecodeString(m.AuthTokenSealed)
	if err != nil {
		return "", fmt.Errorf("failed to read the sealed Twilio auth token: %w", err)
	}
	token, err := keys.Open(m.AuthTokenKey, sealed, authTokenAdditional(loginID))
	if err != nil {
		return "", fmt.Errorf("failed to open the Twilio auth token (is key %q still in network.secure_chat.keys?): %w",
			m.AuthTokenKey, err)
	}
	return string(token), nil
}

// SetAuthToken seals the token with the keyring's current key, in place of any older form.
func (m *UserLoginMetadata) SetAuthToken(keys *securechat.Keyring, loginID networkid.UserLoginID, token string) error {
	keyID, sealed, err := keys.Seal([]byte(token), authTokenAdditional(loginID))
	if err != nil {
		return fmt.Errorf("failed to seal the Twilio auth token: %w", err)
	}
	m.AuthTokenSealed, m.AuthTokenKey, m.PlainAuthToken = base64.StdEncoding.EncodeToString(sealed), keyID, ""
	return nil
}

// tokenKey names what keeps the token: the key's ID, or "" for a token kept in clear.
func (m *UserLoginMetadata) tokenKey() string {
	if m.AuthTokenSealed == "" {
		return ""
	}
	return m.AuthTokenKey
}

// needsSealing reports a token kept in clear or sealed with another key than the current one.
func (m *UserLoginMetadata) needsSealing(keys *securechat.Keyring) bool {
	return (m.AuthTokenSealed != "" || m.PlainAuthToken != "") && m.tokenKey() != keys.Current()
}

// GetDBMetaTypes is called once at start-up to learn the metadata types.
func (c *Connector) GetDBMetaTypes() bridgedb.MetaTypes {
	return bridgedb.MetaTypes{
		UserLogin: func() any { return &UserLoginMetadata{} },
	}
}

// LoginTokenKeys counts the linked numbers' auth tokens by the key sealing them; "" counts
// tokens still in clear (saved by an older version, sealed at the bridge's next start).
func LoginTokenKeys(ctx context.Context, db *database.Database) (map[string]int, error) {
	rows, err := db.LoginMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read linked numbers: %w", err)
	}
	counts := make(map[string]int)
	for _, row := range rows {
		var meta UserLoginMetadata
		if json.Unmarshal([]byte(row.Metadata), &meta) == nil && (meta.AuthTokenSealed != "" || meta.PlainAuthToken != "") {
			counts[meta.tokenKey()]++
		}
	}
	return counts, nil
}

// TokenRotation is what RotateLoginTokens did, by the key that sealed each token before
// ("" for tokens that were in clear).
type TokenRotation struct {
	Resealed map[string]int
	// Unopened counts tokens whose key is not in the ring (or that are damaged).
	Unopened map[string]int
	// Changed counts logins the bridge saved while the rotation read them; run it again.
	Changed int
}

// RotateLoginTokens seals every linked number's Twilio auth token with the current key:
// tokens in clear and tokens sealed with older keys. Each login is rewritten only if its
// metadata is still what was read, keeping any field this version does not know.
func RotateLoginTokens(ctx context.Context, db *database.Database, keys *securechat.Keyring) (*TokenRotation, error) {
	rows, err := db.LoginMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read linked numbers: %w", err)
	}
	result := &TokenRotation{Resealed: map[string]int{}, Unopened: map[string]int{}}
	for _, row := range rows {
		var meta UserLoginMetadata
		var fields map[string]json.RawMessage
		if json.Unmarshal([]byte(row.Metadata), &meta) != nil || json.Unmarshal([]byte(row.Metadata), &fields) != nil ||
			!meta.needsSealing(keys) {
			continue
		}
		oldKey, loginID := meta.tokenKey(), networkid.UserLoginID(row.LoginID)
		token, err := meta.AuthToken(keys, loginID)
		if err != nil {
			result.Unopened[oldKey]++
			continue
		}
		if err = meta.SetAuthToken(keys, loginID, token); err != nil {
			return result, err
		}
		fields["auth_token_sealed"], _ = json.Marshal(meta.AuthTokenSealed)
		fields["auth_token_key"], _ = json.Marshal(meta.AuthTokenKey)
		delete(fields, "auth_token")
		updated, err := json.Marshal(fields)
		if err != nil {
			return result, err
		}
		ok, err := db.ReplaceLoginMetadata(ctx, row, string(updated))
		if err != nil {
			return result, fmt.Errorf("failed to save linked number %s: %w", row.LoginID, err)
		} else if ok {
			result.Resealed[oldKey]++
		} else {
			result.Changed++
		}
	}
	return result, nil
}
