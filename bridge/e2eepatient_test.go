//go:build e2eepatient

package bridge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/securechat/e2ee"
)

// bridgev2 never sees a secure room's events (it would try to decrypt them and ask staff for
// keys); everything else in the transaction, to-device events included, passes unchanged.
func TestSecureRoomEventsAreKeptFromBridgev2(t *testing.T) {
	p := &e2eePatients{rooms: map[id.RoomID]bool{"!secure:clinic.example": true}}
	body := []byte(`{"events":[
		{"type":"m.room.encrypted","room_id":"!secure:clinic.example","event_id":"$a","sender":"@nurse:clinic.example","content":{}},
		{"type":"m.room.message","room_id":"!sms:clinic.example","event_id":"$b","sender":"@nurse:clinic.example","content":{"body":"hi"}},
		{"type":"m.room.member","room_id":"!secure:clinic.example","event_id":"$c","state_key":"@nurse:clinic.example","sender":"@nurse:clinic.example","content":{"membership":"join"}}],
		"de.sorunome.msc2409.ephemeral":[{"type":"m.receipt","room_id":"!secure:clinic.example","content":{}},{"type":"m.typing","room_id":"!sms:clinic.example","content":{}}],
		"de.sorunome.msc2409.to_device":[{"type":"m.room.encrypted","sender":"@nurse:clinic.example","to_user_id":"@sms_pw_00:clinic.example","to_device_id":"PW1","content":{"algorithm":"m.olm.v1.curve25519-aes-sha2"}}]}`)
	out, hidden := p.filterTransaction(body)
	assert.Equal(t, 3, hidden)
	var txn struct {
		Events []struct {
			EventID string `json:"event_id"`
		} `json:"events"`
		Ephemeral []struct {
			Type string `json:"type"`
		} `json:"de.sorunome.msc2409.ephemeral"`
		ToDevice []json.RawMessage `json:"de.sorunome.msc2409.to_device"`
	}
	require.NoError(t, json.Unmarshal(out, &txn))
	require.Len(t, txn.Events, 1)
	assert.Equal(t, "$b", txn.Events[0].EventID)
	require.Len(t, txn.Ephemeral, 1)
	assert.Equal(t, "m.typing", txn.Ephemeral[0].Type)
	assert.Len(t, txn.ToDevice, 1)

	// Nothing of a secure room: the body is handed on byte for byte.
	same, hidden := p.filterTransaction([]byte(`{"events":[{"type":"m.room.message","room_id":"!sms:clinic.example"}]}`))
	assert.Zero(t, hidden)
	assert.Equal(t, `{"events":[{"type":"m.room.message","room_id":"!sms:clinic.example"}]}`, string(same))
	bad, hidden := p.filterTransaction([]byte(`not json`))
	assert.Zero(t, hidden)
	assert.Equal(t, "not json", string(bad))
}

// The tagged build does not start without matrix-sdk-crypto-wasm's files for the patient
// page, and says which variable to set and which file is missing.
func TestE2EEPatientPageNeedsTheWasmFolderToStart(t *testing.T) {
	c := &Connector{e2ee: &e2eePatients{}}
	t.Setenv(E2EEWasmDirEnv, "")
	err := c.startE2EEPatient()
	require.Error(t, err)
	assert.Contains(t, err.Error(), E2EEWasmDirEnv)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "matrix_sdk_crypto_wasm_bg.js"), []byte("export {}"), 0o600))
	t.Setenv(E2EEWasmDirEnv, dir)
	err = c.startE2EEPatient()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "matrix_sdk_crypto_wasm_bg.wasm is missing")
	assert.Nil(t, c.e2ee.page)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "matrix_sdk_crypto_wasm_bg.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o600))
	require.NoError(t, c.startE2EEPatient())
	require.NotNil(t, c.e2ee.page)
	assert.Equal(t, E2EEPathPrefix+"page", c.e2ee.page.PagePath())
	assert.True(t, strings.HasPrefix(c.e2ee.page.Wasm.URL, E2EEPathPrefix+"assets/matrix_sdk_crypto_wasm_bg."), c.e2ee.page.Wasm.URL)
	// The secure chat's code page preloads the page's three modules and its wasm, with their SRI values.
	pre := c.codePagePreloads()
	require.Len(t, pre, 4)
	for i, as := range []*e2ee.PageAsset{c.e2ee.page.Module, c.e2ee.page.Core, c.e2ee.page.Bindings, c.e2ee.page.Wasm} {
		assert.Equal(t, securechat.Preload{URL: as.URL, Integrity: as.Integrity, Module: i < 3}, pre[i])
	}

	// A build where the spike could not attach (no appservice) starts as before, preloading nothing.
	require.NoError(t, (&Connector{}).startE2EEPatient())
	assert.Nil(t, (&Connector{}).codePagePreloads())
}
