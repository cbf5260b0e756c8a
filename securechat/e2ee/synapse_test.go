//go:build e2eepatient

package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

// e2eeRegistration is an appservice registration for the spike: MSC4190 (the appservice
// creates its users' devices with PUT /devices and masquerades as them), no transactions.
const e2eeRegistration = `id: carebridge-e2ee18
url: null
as_token: %s
hs_token: hs_token_e2ee18_5b1d
sender_localpart: carebridge_e2ee
rate_limited: false
namespaces:
  users:
  - exclusive: true
    regex: '@pw_.*:localhost'
io.element.msc4190: true
`

// TestKeysUploadThroughTheProxyOnSynapse: on the project's Synapse, a patient-web user's
// device created by MSC4190 uploads real (goolm) device and one-time keys through the proxy,
// masquerading with the as_token; a member's keys/query then finds them, and keys/query of
// a user outside the secure room is refused before Synapse sees it.
func TestKeysUploadThroughTheProxyOnSynapse(t *testing.T) {
	const asToken = "as_token_e2ee18_b2f7"
	hs := testenv.NewSynapse(t)
	reg := filepath.Join(t.TempDir(), "registration.yaml")
	require.NoError(t, os.WriteFile(reg, []byte(fmt.Sprintf(e2eeRegistration, asToken)), 0o600))
	hs.Start(reg)
	nurse := id.UserID(hs.CreateUser(t, "nurse", "correct-horse-battery"))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// The bridge's side (not the browser's): the patient-web user, its browser device (MSC4190)
	// and the secure room, made with the as_token.
	patient := id.UserID("@pw_6f1c2a:localhost")
	as, err := mautrix.NewClient(hs.URL(), patient, asToken)
	require.NoError(t, err)
	as.SetAppServiceUserID = true
	_, _, err = as.Register(ctx, &mautrix.ReqRegister[any]{Username: patient.Localpart(), Type: mautrix.AuthTypeAppservice, InhibitLogin: true})
	require.NoError(t, err)
	const device = id.DeviceID("PATIENTWEB1")
	require.NoError(t, as.CreateDeviceMSC4190(ctx, device, "Patient browser"))
	room, err := as.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	require.NoError(t, err)

	p, err := New(Config{
		HomeserverURL: hs.URL(), ASToken: asToken, UserID: patient, DeviceIDs: []id.DeviceID{device}, RoomID: room.RoomID,
		Members: func(ctx context.Context) ([]id.UserID, error) {
			resp, err := as.JoinedMembers(ctx, room.RoomID)
			if err != nil {
				return nil, err
			}
			members := make([]id.UserID, 0, len(resp.Joined))
			for u := range resp.Joined {
				members = append(members, u)
			}
			return members, nil
		},
	})
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(rw, r.WithContext(WithDevice(r.Context(), device)))
	}))
	defer srv.Close()
	post := func(path string, body any) (int, []byte) {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, bytes.NewReader(data))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, out
	}

	// What the page's OlmMachine would upload: identity keys and five signed one-time keys.
	acc := crypto.NewOlmAccount()
	dk := &mautrix.DeviceKeys{
		UserID: patient, DeviceID: device, Algorithms: []id.Algorithm{id.AlgorithmMegolmV1, id.AlgorithmOlmV1},
		Keys: map[id.DeviceKeyID]string{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, device): string(acc.IdentityKey()),
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, device):    string(acc.SigningKey()),
		},
	}
	sig, err := acc.SignJSON(dk)
	require.NoError(t, err)
	dk.Signatures = signatures.NewSingleSignature(patient, id.KeyAlgorithmEd25519, device.String(), sig)
	oneTime := signedOneTimeKeys(t, acc, patient, device, 5)

	status, body := post("/_matrix/client/v3/keys/upload", &mautrix.ReqUploadKeys{DeviceKeys: dk, OneTimeKeys: oneTime})
	require.Equal(t, http.StatusOK, status, "keys/upload through the proxy: %s", body)
	var counts mautrix.RespUploadKeys
	require.NoError(t, json.Unmarshal(body, &counts))
	assert.Equal(t, 5, counts.OneTimeKeyCounts.SignedCurve25519, "Synapse filed the five one-time keys")

	status, body = post("/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[id.UserID][]id.DeviceID{patient: {}}})
	require.Equal(t, http.StatusOK, status, "keys/query of a member: %s", body)
	var query mautrix.RespQueryKeys
	require.NoError(t, json.Unmarshal(body, &query))
	got := query.DeviceKeys[patient][device]
	require.NotNil(t, got, "Synapse holds the keys under the MSC4190 device the proxy masqueraded as")
	assert.Equal(t, string(acc.SigningKey()), got.Keys[id.NewDeviceKeyID(id.KeyAlgorithmEd25519, device)])

	status, body = post("/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[id.UserID][]id.DeviceID{nurse: {}}})
	assert.Equal(t, http.StatusForbidden, status, "the nurse is not in the secure room yet: %s", body)

	_, err = as.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: nurse})
	require.NoError(t, err)
	staff := hs.Login(t, "nurse", "correct-horse-battery")
	_, err = staff.JoinRoomByID(ctx, room.RoomID)
	require.NoError(t, err)
	status, body = post("/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[id.UserID][]id.DeviceID{nurse: {}}})
	assert.Equal(t, http.StatusOK, status, "once the nurse has joined, her keys can be asked for: %s", body)
}

// signedOneTimeKeys makes n one-time keys on acc, each signed by the device as a page's
// OlmMachine signs them, ready for keys/upload.
func signedOneTimeKeys(t *testing.T, acc *crypto.OlmAccount, user id.UserID, device id.DeviceID, n uint) map[id.KeyID]mautrix.OneTimeKey {
	t.Helper()
	require.NoError(t, acc.Internal.GenOneTimeKeys(n))
	otks, err := acc.Internal.OneTimeKeys()
	require.NoError(t, err)
	oneTime := map[id.KeyID]mautrix.OneTimeKey{}
	for keyID, key := range otks {
		k := mautrix.OneTimeKey{Key: key}
		sig, err := acc.SignJSON(k)
		require.NoError(t, err)
		k.Signatures = signatures.NewSingleSignature(user, id.KeyAlgorithmEd25519, device.String(), sig)
		oneTime[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, keyID)] = k
	}
	return oneTime
}
