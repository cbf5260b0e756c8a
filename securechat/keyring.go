package securechat

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrUnknownKey means sealed data names a key the keyring does not have.
var ErrUnknownKey = errors.New("sealed with a key this bridge does not have")

// Keyring seals data at rest with AES-256-GCM and derives the key that hashes tokens.
// New data uses the current key; older keys (issue: key rotation) still open.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
	hashKey []byte
}

// NewKeyring builds a keyring with one current key.
func NewKeyring(id string, key []byte) (*Keyring, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secure chat key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// The token-hashing key is derived, so a database dump alone cannot test guesses.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("carebridge secure chat token hashing v1"))
	return &Keyring{current: id, aeads: map[string]cipher.AEAD{id: aead}, hashKey: mac.Sum(nil)}, nil
}

// Seal encrypts plaintext under the current key; additional binds it to its place
// (e.g. the conversation), so a sealed value moved to another row does not open.
func (k *Keyring) Seal(plaintext, additional []byte) (keyID string, sealed []byte, err error) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err = rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return k.current, aead.Seal(nonce, nonce, plaintext, additional), nil
}

// Open decrypts what Seal produced.
func (k *Keyring) Open(keyID string, sealed, additional []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed data is too short")
	}
	nonce, ciphertext := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	return aead.Open(nil, nonce, ciphertext, additional)
}

// Hash is the keyed hash (HMAC-SHA256, hex) stored in place of a token, code, session
// ID or date of birth. purpose separates the uses, so one value never matches another kind.
func (k *Keyring) Hash(purpose, value string) string {
	mac := hmac.New(sha256.New, k.hashKey)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))
}

// Equal compares two hashes in constant time.
func Equal(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}
