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
	"slices"

	"github.com/carebridge/carebridge/config"
)

// ErrUnknownKey means sealed data names a key the keyring does not have.
var ErrUnknownKey = errors.New("sealed with a key this bridge does not have")

// Keyring seals data at rest with AES-256-GCM and derives the keys that hash tokens.
// New data uses the current key; older keys still open what they sealed, and still
// recognise the hashes they made, until a rotation has moved everything to the current key.
type Keyring struct {
	current string
	// ids is the current key's ID first, then the others in order.
	ids  []string
	keys map[string]ringKey
}

type ringKey struct {
	aead    cipher.AEAD
	hashKey []byte
	// auditKey keys the audit log's chain (auditkey.go).
	auditKey []byte
}

// NewKeyring builds a keyring with a single key, current.
func NewKeyring(id string, key []byte) (*Keyring, error) {
	return NewKeyringOf(id, map[string][]byte{id: key})
}

// NewKeyringOf builds a keyring of several keys by ID; current names the one that seals.
func NewKeyringOf(current string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("the current key %q is not among the keys", current)
	}
	k := &Keyring{current: current, ids: []string{current}, keys: make(map[string]ringKey, len(keys))}
	for id, key := range keys {
		if id == "" {
			return nil, errors.New("a secure chat key has an empty ID")
		} else if len(key) != config.KeyBytes {
			return nil, fmt.Errorf("secure chat key %q must be 32 bytes, not %d", id, len(key))
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
		hashKey := mac.Sum(nil)
		k.keys[id] = ringKey{aead: aead, hashKey: hashKey, auditKey: deriveAuditKey(hashKey)}
		if id != current {
			k.ids = append(k.ids, id)
		}
	}
	slices.Sort(k.ids[1:])
	return k, nil
}

// KeyringFromConfig builds the keyring of the secure_chat section: every key, the
// current one sealing.
func KeyringFromConfig(cfg *config.SecureChatConfig) (*Keyring, error) {
	current, keys, err := cfg.KeyMaterial()
	if err != nil {
		return nil, err
	}
	return NewKeyringOf(current, keys)
}

// Current is the ID of the key new data is sealed with.
func (k *Keyring) Current() string {
	return k.current
}

// IDs lists the keys' IDs, the current one first.
func (k *Keyring) IDs() []string {
	return slices.Clone(k.ids)
}

// Has reports whether the keyring holds the key with this ID.
func (k *Keyring) Has(id string) bool {
	_, ok := k.keys[id]
	return ok
}

// Seal encrypts plaintext under the current key; additional binds it to its place
// (e.g. the conversation), so a sealed value moved to another row does not open.
func (k *Keyring) Seal(plaintext, additional []byte) (keyID string, sealed []byte, err error) {
	aead := k.keys[k.current].aead
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err = rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return k.current, aead.Seal(nonce, nonce, plaintext, additional), nil
}

// Open decrypts what Seal produced with the key named keyID.
func (k *Keyring) Open(keyID string, sealed, additional []byte) ([]byte, error) {
	key, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	aead := key.aead
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed data is too short")
	}
	nonce, ciphertext := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	return aead.Open(nil, nonce, ciphertext, additional)
}

// Hash is the keyed hash (HMAC-SHA256, hex) stored in place of a token, code, session
// ID or date of birth, made with the current key. purpose separates the uses, so one
// value never matches another kind.
func (k *Keyring) Hash(purpose, value string) string {
	return hashWith(k.keys[k.current].hashKey, purpose, value)
}

// Hashes are value's hashes under every key, the current key's first: a lookup by hash
// tries them in turn, so what was hashed before a rotation is still found.
func (k *Keyring) Hashes(purpose, value string) []string {
	hashes := make([]string, len(k.ids))
	for i, id := range k.ids {
		hashes[i] = hashWith(k.keys[id].hashKey, purpose, value)
	}
	return hashes
}

// Match reports whether stored is value's hash under any key, comparing in constant time
// against every key (how many keys there are is not secret; which one matched is not told).
func (k *Keyring) Match(purpose, value, stored string) bool {
	matched := false
	for _, hash := range k.Hashes(purpose, value) {
		matched = Equal(hash, stored) || matched
	}
	return matched
}

func hashWith(hashKey []byte, purpose, value string) string {
	mac := hmac.New(sha256.New, hashKey)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))
}

// Equal compares two hashes in constant time.
func Equal(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}
