package securechat

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

func TestKeyringSealOpen(t *testing.T) {
	k, err := NewKeyring("k1", bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	id, sealed, err := k.Seal([]byte("Your biopsy results are benign."), []byte("15550001111/15551234567/body"))
	require.NoError(t, err)
	assert.Equal(t, "k1", id)
	assert.NotContains(t, string(sealed), "biopsy", "sealed data does not contain the plaintext")
	opened, err := k.Open(id, sealed, []byte("15550001111/15551234567/body"))
	require.NoError(t, err)
	assert.Equal(t, "Your biopsy results are benign.", string(opened))

	_, err = k.Open(id, sealed, []byte("15550001111/15557654321/body"))
	assert.Error(t, err, "a sealed value moved to another conversation does not open")
	sealed[len(sealed)-1] ^= 1
	_, err = k.Open(id, sealed, []byte("15550001111/15551234567/body"))
	assert.Error(t, err, "tampered data does not open")
	_, err = k.Open("k9", sealed, nil)
	assert.ErrorIs(t, err, ErrUnknownKey)
	_, _, again := k.Seal([]byte("x"), nil)
	require.NoError(t, again)

	_, err = NewKeyring("k1", []byte("short"))
	assert.Error(t, err)
}

func TestKeyringHash(t *testing.T) {
	k1, err := NewKeyring("k1", bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	k2, err := NewKeyring("k1", bytes.Repeat([]byte{2}, 32))
	require.NoError(t, err)
	assert.Equal(t, k1.Hash("code", "123456"), k1.Hash("code", "123456"))
	assert.NotEqual(t, k1.Hash("code", "123456"), k1.Hash("link", "123456"), "purposes are separated")
	assert.NotEqual(t, k1.Hash("code", "123456"), k2.Hash("code", "123456"), "the hash depends on the key")
	assert.Len(t, k1.Hash("session", "x"), 64)
	assert.True(t, Equal("abc", "abc"))
	assert.False(t, Equal("abc", "abd"))
}

func twoKeyRing(t *testing.T, current string) *Keyring {
	t.Helper()
	k, err := NewKeyringOf(current, map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32), "k2": bytes.Repeat([]byte{2}, 32)})
	require.NoError(t, err)
	return k
}

func TestKeyringRotation(t *testing.T) {
	const ad = "15550001111/15551234567/body"
	before, err := NewKeyring("k1", bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	oldID, oldSealed, err := before.Seal([]byte("Your A1C is 6.1%."), []byte(ad))
	require.NoError(t, err)

	after := twoKeyRing(t, "k2")
	assert.Equal(t, "k2", after.Current())
	assert.Equal(t, []string{"k2", "k1"}, after.IDs(), "current first")
	assert.True(t, after.Has("k1"))
	assert.False(t, after.Has("k3"))

	opened, err := after.Open(oldID, oldSealed, []byte(ad))
	require.NoError(t, err, "data sealed with the old key still opens")
	assert.Equal(t, "Your A1C is 6.1%.", string(opened))

	newID, newSealed, err := after.Seal([]byte("Take 500 mg twice a day."), []byte(ad))
	require.NoError(t, err)
	assert.Equal(t, "k2", newID, "new data uses the current key")
	_, err = before.Open(newID, newSealed, []byte(ad))
	assert.ErrorIs(t, err, ErrUnknownKey, "a bridge without k2 cannot open it")
	_, err = after.Open("k1", newSealed, []byte(ad))
	assert.Error(t, err, "the ID says which key sealed it; another key does not open it")
	opened, err = after.Open(newID, newSealed, []byte(ad))
	require.NoError(t, err)
	assert.Equal(t, "Take 500 mg twice a day.", string(opened))
}

func TestKeyringHashesAcrossRotation(t *testing.T) {
	before, err := NewKeyring("k1", bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	after := twoKeyRing(t, "k2")
	stored := before.Hash("link", "q7Vh3kTt0aZs9LmN2pXw4YbC")

	assert.Equal(t, stored, twoKeyRing(t, "k1").Hash("link", "q7Vh3kTt0aZs9LmN2pXw4YbC"),
		"a key's hashes do not change when other keys join the ring")
	hashes := after.Hashes("link", "q7Vh3kTt0aZs9LmN2pXw4YbC")
	require.Len(t, hashes, 2)
	assert.Equal(t, after.Hash("link", "q7Vh3kTt0aZs9LmN2pXw4YbC"), hashes[0], "the current key's hash first")
	assert.Equal(t, stored, hashes[1], "then the old key's, so a lookup still finds what was hashed before")
	assert.NotEqual(t, hashes[0], hashes[1])

	assert.True(t, after.Match("link", "q7Vh3kTt0aZs9LmN2pXw4YbC", stored), "old hash matches")
	assert.True(t, after.Match("link", "q7Vh3kTt0aZs9LmN2pXw4YbC", hashes[0]), "new hash matches")
	assert.False(t, after.Match("link", "q7Vh3kTt0aZs9LmN2pXw4YbD", stored), "another value does not")
	assert.False(t, after.Match("code", "q7Vh3kTt0aZs9LmN2pXw4YbC", stored), "another purpose does not")
	assert.False(t, before.Match("link", "q7Vh3kTt0aZs9LmN2pXw4YbC", hashes[0]), "a ring without k2 does not know its hashes")
	assert.Equal(t, []string{stored}, before.Hashes("link", "q7Vh3kTt0aZs9LmN2pXw4YbC"))
}

func TestNewKeyringOfRefuses(t *testing.T) {
	_, err := NewKeyringOf("k3", map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32)})
	assert.ErrorContains(t, err, `the current key "k3" is not among the keys`)
	_, err = NewKeyringOf("k1", map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32), "k2": []byte("short")})
	assert.ErrorContains(t, err, `secure chat key "k2" must be 32 bytes, not 5`)
}

func TestKeyringFromConfig(t *testing.T) {
	cfg := &config.SecureChatConfig{CurrentKey: "k2", Keys: map[string]string{
		"k1": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)),
		"k2": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)),
	}}
	k, err := KeyringFromConfig(cfg)
	require.NoError(t, err)
	assert.Equal(t, []string{"k2", "k1"}, k.IDs())
	assert.Equal(t, twoKeyRing(t, "k2").Hash("session", "x"), k.Hash("session", "x"))

	cfg.CurrentKey = "k9"
	_, err = KeyringFromConfig(cfg)
	assert.ErrorIs(t, err, config.ErrInvalidConfig)
}

// The rotation re-seals with MessageAdditional; the service must seal with the same.
func TestMessageAdditionalIsTheService(t *testing.T) {
	conv := &database.Conversation{LoginID: "15550001111", PortalID: "15551234567"}
	for _, part := range []string{"body", "data"} {
		assert.Equal(t, additional(conv, part), MessageAdditional(conv.LoginID, conv.PortalID, part))
	}
}
