package securechat

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
