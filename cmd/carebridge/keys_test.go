package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/dendrite"
)

// The secure chat keys of the tests' configs: k1 seals first, k2 becomes current.
var (
	rotationKey1 = bytes.Repeat([]byte{0x11}, 32)
	rotationKey2 = bytes.Repeat([]byte{0x22}, 32)
)

// TestAuthTokenSealedAtStart runs the bridge: a linked number's auth token is stored
// sealed; one saved in clear by an older version is sealed at the next start; after k2
// (from its environment variable) becomes current, the next start re-seals it with k2;
// and Twilio's signed webhooks are accepted throughout, so the token still works.
func TestAuthTokenSealedAtStart(t *testing.T) { eachDB(t, runAuthTokenSealedAtStart) }

func runAuthTokenSealedAtStart(t *testing.T, kind string) {
	if testing.Short() {
		t.Skip("starts Dendrite and the bridge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, kind)
	loginID, err := e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	raw, err := dbutil.NewWithDialect(e.db.URI, e.db.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	metadata := func() *database.LoginMetadata {
		t.Helper()
		rows, err := db.LoginMetadata(ctx)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		require.Equal(t, loginID, rows[0].LoginID)
		return rows[0]
	}
	tokenKey := func(row *database.LoginMetadata) string {
		t.Helper()
		var meta bridge.UserLoginMetadata
		require.NoError(t, json.Unmarshal([]byte(row.Metadata), &meta))
		assert.Empty(t, meta.PlainAuthToken)
		return meta.AuthTokenKey
	}
	webhookAccepted := func(body string) {
		t.Helper()
		res, err := e.fake.SendInbound(ctx, patient, clinicPhone, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, "the signature checks out with the opened token: %s", res.Body)
	}

	linked := metadata()
	assert.NotContains(t, linked.Metadata, authToken, "linking stores the token sealed")
	assert.Equal(t, "k1", tokenKey(linked))
	webhookAccepted("Is the clinic open on Saturday?")

	// As an older version saved it: the token in clear.
	e.br.Stop()
	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(linked.Metadata), &fields))
	delete(fields, "auth_token_sealed")
	delete(fields, "auth_token_key")
	fields["auth_token"] = authToken
	old, err := json.Marshal(fields)
	require.NoError(t, err)
	ok, err := db.ReplaceLoginMetadata(ctx, linked, string(old))
	require.NoError(t, err)
	require.True(t, ok)
	e.br.Restart()
	// The login is loaded (and its token re-sealed) just after the bridge answers HTTP.
	var resealed *database.LoginMetadata
	require.Eventually(t, func() bool {
		resealed = metadata()
		return !strings.Contains(resealed.Metadata, authToken)
	}, 30*time.Second, 100*time.Millisecond, "sealed at start")
	assert.Equal(t, "k1", tokenKey(resealed))
	webhookAccepted("I need to reschedule my appointment.")

	// Rotation: k2, from the environment, becomes current; the next start re-seals with it.
	e.br.Stop()
	t.Setenv("CAREBRIDGE_SECURE_CHAT_KEY_K2", base64.StdEncoding.EncodeToString(rotationKey2))
	cfgData, err := os.ReadFile(e.br.ConfigPath())
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(cfgData, &cfg))
	require.NoError(t, dendrite.SetYAMLPath(cfg, []string{"network", "secure_chat", "keys", "k2"}, "env"))
	require.NoError(t, dendrite.SetYAMLPath(cfg, []string{"network", "secure_chat", "current_key"}, "k2"))
	cfgData, err = yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.br.ConfigPath(), cfgData, 0o600))
	e.br.Restart()
	require.Eventually(t, func() bool { return tokenKey(metadata()) == "k2" }, 30*time.Second, 100*time.Millisecond,
		"re-sealed with k2 at start")
	webhookAccepted("Thank you!")
	assert.NotContains(t, e.br.Log(), authToken, "the token never reaches the log")
}
