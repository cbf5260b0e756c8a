package bridge

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/securechat"
)

func TestAuthTokenSealedAtRest(t *testing.T) {
	const token = "8c1f0e2d3b4a59687766554433221100"
	k1, err := securechat.NewKeyring("k1", bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	ring, err := securechat.NewKeyringOf("k2", map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32), "k2": bytes.Repeat([]byte{2}, 32)})
	require.NoError(t, err)

	meta := &UserLoginMetadata{AccountSID: "AC0123456789abcdef0123456789abcdef", Phone: "+15550001111"}
	require.NoError(t, meta.SetAuthToken(k1, "15550001111", token))
	stored, err := json.Marshal(meta)
	require.NoError(t, err)
	assert.NotContains(t, string(stored), token, "the token is not kept in clear")
	assert.NotContains(t, string(stored), `"auth_token":`)
	assert.Contains(t, string(stored), `"auth_token_key":"k1"`)

	var loaded UserLoginMetadata
	require.NoError(t, json.Unmarshal(stored, &loaded))
	got, err := loaded.AuthToken(ring, "15550001111")
	require.NoError(t, err, "a token sealed with an older key opens while the key is in the ring")
	assert.Equal(t, token, got)
	assert.True(t, loaded.needsSealing(ring), "sealed with a key that is no longer current")
	assert.False(t, loaded.needsSealing(k1))
	_, err = loaded.AuthToken(ring, "15550002222")
	assert.Error(t, err, "bound to its login: copied to another it does not open")

	legacy := UserLoginMetadata{}
	require.NoError(t, json.Unmarshal([]byte(`{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"`+token+`","phone":"+15550001111"}`), &legacy))
	got, err = legacy.AuthToken(ring, "15550001111")
	require.NoError(t, err, "a login saved by an older version still works")
	assert.Equal(t, token, got)
	assert.True(t, legacy.needsSealing(ring))
	require.NoError(t, legacy.SetAuthToken(ring, "15550001111", got))
	assert.Empty(t, legacy.PlainAuthToken)
	assert.Equal(t, "k2", legacy.AuthTokenKey)
	assert.False(t, legacy.needsSealing(ring))

	_, err = (&UserLoginMetadata{}).AuthToken(ring, "15550001111")
	assert.ErrorIs(t, err, ErrNoAuthToken)
	assert.False(t, (&UserLoginMetadata{}).needsSealing(ring))
}
