package securechat

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/carebridge/carebridge/database"
)

// The keyring keys the audit log's hash chain: each row's hash is an HMAC under an audit
// key derived from one of its keys, named in the row, so rows made before a rotation
// still verify while their key stays in the ring.
var _ database.AuditKeys = (*Keyring)(nil)

// auditKeyLabel separates the audit key from the token-hashing key it is derived from
// (token hashes always have a NUL after their purpose; this label has none).
const auditKeyLabel = "carebridge audit log chain v1"

// AuditMAC is HMAC-SHA256 of data under the audit key of the key id; ok is false when
// the ring has no such key.
func (k *Keyring) AuditMAC(id string, data []byte) (mac []byte, ok bool) {
	key, ok := k.keys[id]
	if !ok {
		return nil, false
	}
	h := hmac.New(sha256.New, key.auditKey)
	h.Write(data)
	return h.Sum(nil), true
}

// deriveAuditKey derives a key's audit key from its token-hashing key, which is itself
// derived, so the audit key is never stored and a database dump cannot make it.
func deriveAuditKey(hashKey []byte) []byte {
	derive := hmac.New(sha256.New, hashKey)
	derive.Write([]byte(auditKeyLabel))
	return derive.Sum(nil)
}
