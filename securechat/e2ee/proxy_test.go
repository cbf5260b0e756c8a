//go:build e2eepatient

package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

const (
	testASToken  = "as_token_e2ee18_3c9f0a7d"
	patientUser  = id.UserID("@pw_6f1c2a:clinic.example")
	patientDev   = id.DeviceID("PATIENTWEB1")
	patientDev2  = id.DeviceID("PATIENTWEB2")
	nurse        = id.UserID("@nurse.lee:clinic.example")
	clinician    = id.UserID("@dr.shah:clinic.example")
	outsider     = id.UserID("@outsider:clinic.example")
	smsGhost     = id.UserID("@sms_9a0b7c:clinic.example")
	secureRoom   = id.RoomID("!securePw6f1c2a:clinic.example")
	smsRoom      = id.RoomID("!smsConversation42:clinic.example")
	dehydratedID = id.DeviceID("DEHYDRATED7Q")
	// sentinel stands for content and key material: it must never be logged.
	sentinel = "SENTINEL-4f7a19-ciphertext"
)

// upstreamCall is what reached the fake homeserver.
type upstreamCall struct {
	Method, Path, EscapedPath, RawQuery, Auth, Cookie, ContentType string
	Body                                                           []byte
}

type fakeHomeserver struct {
	mu    sync.Mutex
	calls []upstreamCall
}

func (f *fakeHomeserver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, upstreamCall{
		Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
		Cookie: r.Header.Get("Cookie"), ContentType: r.Header.Get("Content-Type"), Body: body,
	})
	f.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("X-Upstream-Secret", "not-for-the-browser")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write([]byte(`{"relayed_from":"fake-homeserver"}`))
}

func (f *fakeHomeserver) take() []upstreamCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

type harness struct {
	hs      *fakeHomeserver
	handler http.Handler
	logs    *bytes.Buffer
	members []id.UserID
	memErr  error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{hs: &fakeHomeserver{}, logs: &bytes.Buffer{}, members: []id.UserID{patientUser, nurse, clinician}}
	srv := httptest.NewServer(h.hs)
	t.Cleanup(srv.Close)
	p, err := New(Config{
		HomeserverURL: srv.URL,
		ASToken:       testASToken,
		UserID:        patientUser,
		DeviceIDs:     []id.DeviceID{patientDev, patientDev2},
		RoomID:        secureRoom,
		Members: func(ctx context.Context) ([]id.UserID, error) {
			return h.members, h.memErr
		},
		MaxBodyBytes: 64 << 10,
	})
	require.NoError(t, err)
	log := zerolog.New(h.logs).Level(zerolog.TraceLevel)
	// What the secure chat's session layer does before the proxy: the request is authenticated
	// and the session names its device. X-Test-No-Device stands for a session without one.
	h.handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ctx := log.WithContext(r.Context())
		if r.Header.Get("X-Test-No-Device") == "" {
			ctx = WithDevice(ctx, patientDev)
		}
		p.ServeHTTP(rw, r.WithContext(ctx))
	})
	return h
}

// do sends what a browser would: its own cookie, a bearer token and query parameters trying to
// choose whom to masquerade as; the proxy must drop all of them.
func (h *harness) do(method, path string, body any, header ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(data)
	}
	target := path
	if strings.Contains(target, "?") {
		target += "&"
	} else {
		target += "?"
	}
	target += "user_id=" + string(nurse) + "&device_id=NURSEPHONE&access_token=browser_token"
	r := httptest.NewRequest(method, target, rd)
	r.Header.Set("Cookie", "__Host-carebridge=session_cookie_value")
	r.Header.Set("Authorization", "Bearer browser_token")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rw := httptest.NewRecorder()
	h.handler.ServeHTTP(rw, r)
	return rw
}

const v3 = "/_matrix/client/v3"
const dehydrated = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"

type obj = map[string]any

// ownData is the patient-web user's own account data.
const ownData = v3 + "/user/" + string(patientUser) + "/account_data/"

func ssssKey() obj {
	return obj{"algorithm": "m.secret_storage.v1.aes-hmac-sha2", "iv": "aXY=", "mac": "bWFj"}
}

func ssssSecret() obj {
	return obj{"encrypted": obj{"prfKey1": obj{"iv": "aXY=", "ciphertext": "ct" + sentinel, "mac": "bWFj"}}}
}

func deviceKeys(user id.UserID, device id.DeviceID) obj {
	return obj{
		"user_id": user, "device_id": device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": obj{
			"curve25519:" + string(device): "curveKey" + sentinel,
			"ed25519:" + string(device):    "edKey" + sentinel,
		},
		"signatures": obj{string(user): obj{"ed25519:" + string(device): "sig" + sentinel}},
	}
}

func oneTimeKeys(user id.UserID, device id.DeviceID) obj {
	return obj{"signed_curve25519:AAAAAQ": obj{
		"key":        "otk" + sentinel,
		"signatures": obj{string(user): obj{"ed25519:" + string(device): "otksig" + sentinel}},
	}}
}

func crossSigningKey(user id.UserID, usage string) obj {
	return obj{
		"user_id": user, "usage": []string{usage},
		"keys":       obj{"ed25519:" + usage + "pub": usage + "pub"},
		"signatures": obj{string(user): obj{"ed25519:masterpub": "xsig" + sentinel}},
	}
}

func megolm() obj {
	return obj{
		"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA" + sentinel,
		"sender_key": "senderKey", "device_id": patientDev, "session_id": "sessionABC",
	}
}

func olm() obj {
	return obj{"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": "senderKey",
		"ciphertext": obj{"curveOfNurse": obj{"type": 0, "body": "olm" + sentinel}}}
}

func TestProxyRelaysOnlyTheAllowlistAsThePatientDevice(t *testing.T) {
	h := newHarness(t)
	encSecure := v3 + "/rooms/" + string(secureRoom) + "/send/m.room.encrypted/txn-1"
	allowed := []struct {
		name, method, path string
		body               any
		wantPath           string
		wantEscaped        string // the path as it reaches the homeserver, escaped, when it matters
	}{
		{"keys/upload of the session's own device", "POST", v3 + "/keys/upload",
			obj{"device_keys": deviceKeys(patientUser, patientDev), "one_time_keys": oneTimeKeys(patientUser, patientDev),
				"fallback_keys": oneTimeKeys(patientUser, patientDev)}, "", ""},
		{"keys/upload of one-time keys only", "POST", v3 + "/keys/upload",
			obj{"one_time_keys": oneTimeKeys(patientUser, patientDev)}, "", ""},
		{"cross-signing keys of the patient-web user", "POST", v3 + "/keys/device_signing/upload",
			obj{"master_key": crossSigningKey(patientUser, "master"), "self_signing_key": crossSigningKey(patientUser, "self_signing"),
				"user_signing_key": crossSigningKey(patientUser, "user_signing")}, "", ""},
		{"the patient signs its own device", "POST", v3 + "/keys/signatures/upload",
			obj{string(patientUser): obj{string(patientDev2): deviceKeys(patientUser, patientDev2)}}, "", ""},
		{"keys/query of the room's members", "POST", v3 + "/keys/query",
			obj{"device_keys": obj{string(nurse): []string{}, string(clinician): []string{"DRLAPTOP"}, string(patientUser): []string{}}, "timeout": 10000}, "", ""},
		{"keys/claim of members' devices", "POST", v3 + "/keys/claim",
			obj{"one_time_keys": obj{string(nurse): obj{"NURSEPHONE": "signed_curve25519"}, string(clinician): obj{"DRLAPTOP": "signed_curve25519"}}}, "", ""},
		{"olm to-device to a member's device", "PUT", v3 + "/sendToDevice/m.room.encrypted/txn-2",
			obj{"messages": obj{string(nurse): obj{"NURSEPHONE": olm()}}}, "", ""},
		{"verification request to the patient's other devices", "PUT", v3 + "/sendToDevice/m.key.verification.request/txn-3",
			obj{"messages": obj{string(patientUser): obj{"*": obj{"from_device": patientDev, "methods": []string{"m.sas.v1"}, "transaction_id": "v1", "timestamp": 1}}}}, "", ""},
		{"withheld notice to a member", "PUT", v3 + "/sendToDevice/m.room_key.withheld/txn-4",
			obj{"messages": obj{string(clinician): obj{"UNSIGNED1": obj{"algorithm": "m.megolm.v1.aes-sha2", "code": "m.unverified", "room_id": secureRoom, "session_id": "s", "sender_key": "k"}}}}, "", ""},
		{"an encrypted reply into the secure room", "PUT", encSecure, megolm(), "", ""},
		{"an encrypted reply into the secure room, escaped path", "PUT",
			v3 + "/rooms/%21securePw6f1c2a%3Aclinic.example/send/m.room.encrypted/txn-5", megolm(),
			v3 + "/rooms/" + string(secureRoom) + "/send/m.room.encrypted/txn-5", ""},
		{"an encrypted edit relation stays", "PUT", v3 + "/rooms/" + string(secureRoom) + "/send/m.room.encrypted/txn-6",
			func() obj {
				m := megolm()
				m["m.relates_to"] = obj{"rel_type": "m.replace", "event_id": "$orig"}
				return m
			}(), "", ""},
		{"a read receipt in the secure room", "POST", v3 + "/rooms/" + string(secureRoom) + "/receipt/m.read/$ev1", obj{}, "", ""},
		{"a private read receipt with a thread", "POST", v3 + "/rooms/" + string(secureRoom) + "/receipt/m.read.private/$ev2", obj{"thread_id": "main"}, "", ""},
		{"store the dehydrated device", "PUT", dehydrated,
			obj{"device_id": dehydratedID, "device_data": obj{"algorithm": "org.matrix.msc3814.v2", "device_pickle": "pickle" + sentinel, "nonce": "n"},
				"initial_device_display_name": "Dehydrated device", "device_keys": deviceKeys(patientUser, dehydratedID),
				"one_time_keys": oneTimeKeys(patientUser, dehydratedID), "fallback_keys": oneTimeKeys(patientUser, dehydratedID)}, "", ""},
		{"fetch the dehydrated device", "GET", dehydrated, nil, "", ""},
		{"store the secret storage key description", "PUT", ownData + "m.secret_storage.key.prfKey1", ssssKey(), "", ""},
		{"store the default secret storage key", "PUT", ownData + "m.secret_storage.default_key", obj{"key": "prfKey1"}, "", ""},
		{"store the encrypted master key", "PUT", ownData + "m.cross_signing.master", ssssSecret(), "", ""},
		{"store the encrypted self-signing key", "PUT", ownData + "m.cross_signing.self_signing", ssssSecret(), "", ""},
		{"store the encrypted user-signing key", "PUT", ownData + "m.cross_signing.user_signing", ssssSecret(), "", ""},
		{"read the default secret storage key", "GET", ownData + "m.secret_storage.default_key", nil, "", ""},
		{"read the key description", "GET", ownData + "m.secret_storage.key.prfKey1", nil, "", ""},
		{"read the encrypted self-signing key", "GET", ownData + "m.cross_signing.self_signing", nil, "", ""},
		{"read the own account data, escaped user ID", "GET", v3 + "/user/%40pw_6f1c2a%3Aclinic.example/account_data/m.cross_signing.master", nil,
			ownData + "m.cross_signing.master", ""},
		{"delete the dehydrated device", "DELETE", dehydrated, nil, "", ""},
		{"the dehydrated device's to-device events", "POST", dehydrated + "/" + string(dehydratedID) + "/events", obj{"next_batch": "b1"}, "", ""},
		// matrix-sdk-crypto names a dehydrated device by its Curve25519 key in base64: '+' and
		// '/' in one path segment, which must reach the homeserver as one segment still.
		{"the events of a dehydrated device whose ID holds a slash", "POST", dehydrated + "/V14%2BDmQO5cHMs%2F%2FYAXh/events", obj{},
			dehydrated + "/V14+DmQO5cHMs//YAXh/events", dehydrated + "/V14+DmQO5cHMs%2F%2FYAXh/events"},
	}
	for _, tc := range allowed {
		t.Run("allowed/"+tc.name, func(t *testing.T) {
			h.hs.take() // a failed case before this one must not spill over
			rw := h.do(tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusOK, rw.Code, rw.Body.String())
			assert.JSONEq(t, `{"relayed_from":"fake-homeserver"}`, rw.Body.String(), "the homeserver's answer is relayed")
			assert.Empty(t, rw.Header().Get("X-Upstream-Secret"), "only the content type of the answer's headers is relayed")
			calls := h.hs.take()
			require.Len(t, calls, 1, "exactly one request reaches the homeserver")
			got := calls[0]
			wantPath := tc.wantPath
			if wantPath == "" {
				wantPath = tc.path
			}
			assert.Equal(t, tc.method, got.Method)
			assert.Equal(t, wantPath, got.Path)
			if tc.wantEscaped != "" {
				assert.Equal(t, tc.wantEscaped, got.EscapedPath, "one segment still")
			}
			assert.Equal(t, "Bearer "+testASToken, got.Auth, "masquerading with the as_token, never the browser's token")
			assert.Empty(t, got.Cookie, "the browser's cookie stays with the proxy")
			q := parseQuery(t, got.RawQuery)
			assert.Equal(t, map[string][]string{
				"user_id":                      {string(patientUser)},
				"device_id":                    {string(patientDev)},
				"org.matrix.msc3202.device_id": {string(patientDev)},
			}, q, "only the masquerading parameters, naming the patient-web user and the session's device")
			if tc.body == nil {
				assert.Empty(t, got.Body)
			} else {
				sent, err := json.Marshal(tc.body)
				require.NoError(t, err)
				assert.JSONEq(t, string(sent), string(got.Body), "the checked body reaches the homeserver unchanged in meaning")
				assert.Equal(t, "application/json", got.ContentType)
			}
		})
	}

	denied := []struct {
		name, method, path string
		body               any
		status             int
		errcode            string
		header             []string
	}{
		{"/sync", "GET", v3 + "/sync?timeout=30000", nil, 403, "M_FORBIDDEN", nil},
		{"a join by alias or ID", "POST", v3 + "/join/" + string(smsRoom), obj{}, 403, "M_FORBIDDEN", nil},
		{"a join of the secure room", "POST", v3 + "/rooms/" + string(secureRoom) + "/join", obj{}, 403, "M_FORBIDDEN", nil},
		{"a send into the SMS room", "PUT", v3 + "/rooms/" + string(smsRoom) + "/send/m.room.encrypted/txn-7", megolm(), 403, "M_FORBIDDEN", nil},
		{"a receipt in the SMS room", "POST", v3 + "/rooms/" + string(smsRoom) + "/receipt/m.read/$ev1", obj{}, 403, "M_FORBIDDEN", nil},
		{"keys/query naming a non-member", "POST", v3 + "/keys/query",
			obj{"device_keys": obj{string(nurse): []string{}, string(outsider): []string{}}}, 403, "M_FORBIDDEN", nil},
		{"keys/query naming the SMS ghost", "POST", v3 + "/keys/query",
			obj{"device_keys": obj{string(smsGhost): []string{}}}, 403, "M_FORBIDDEN", nil},
		{"keys/claim for a non-member's device", "POST", v3 + "/keys/claim",
			obj{"one_time_keys": obj{string(nurse): obj{"NURSEPHONE": "signed_curve25519"}, string(outsider): obj{"OUTDEV": "signed_curve25519"}}}, 403, "M_FORBIDDEN", nil},
		{"keys/claim of another algorithm", "POST", v3 + "/keys/claim",
			obj{"one_time_keys": obj{string(nurse): obj{"NURSEPHONE": "curve25519"}}}, 403, "M_FORBIDDEN", nil},
		{"to-device to a non-member", "PUT", v3 + "/sendToDevice/m.room.encrypted/txn-8",
			obj{"messages": obj{string(outsider): obj{"*": olm()}}}, 403, "M_FORBIDDEN", nil},
		{"to-device of a type not on the list", "PUT", v3 + "/sendToDevice/m.room_key_request/txn-9",
			obj{"messages": obj{string(nurse): obj{"*": obj{"action": "request"}}}}, 403, "M_FORBIDDEN", nil},
		{"to-device m.room.encrypted that is not olm", "PUT", v3 + "/sendToDevice/m.room.encrypted/txn-10",
			obj{"messages": obj{string(nurse): obj{"*": obj{"algorithm": "m.megolm.v1.aes-sha2", "body": "hello"}}}}, 403, "M_FORBIDDEN", nil},
		{"a state event in the secure room", "PUT", v3 + "/rooms/" + string(secureRoom) + "/state/m.room.name/", obj{"name": "x"}, 403, "M_FORBIDDEN", nil},
		{"a member state event in the secure room", "PUT", v3 + "/rooms/" + string(secureRoom) + "/state/m.room.member/" + string(outsider), obj{"membership": "invite"}, 403, "M_FORBIDDEN", nil},
		{"a clear message into the secure room", "PUT", v3 + "/rooms/" + string(secureRoom) + "/send/m.room.message/txn-11",
			obj{"msgtype": "m.text", "body": "hello"}, 403, "M_FORBIDDEN", nil},
		{"m.room.encrypted with a clear body beside the ciphertext", "PUT", encSecure,
			func() obj { m := megolm(); m["body"] = "hello"; return m }(), 403, "M_FORBIDDEN", nil},
		{"m.room.encrypted that is not Megolm", "PUT", encSecure,
			obj{"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": "x"}, 403, "M_FORBIDDEN", nil},
		{"a redaction in the secure room", "PUT", v3 + "/rooms/" + string(secureRoom) + "/redact/$ev1/txn-12", obj{}, 403, "M_FORBIDDEN", nil},
		{"keys/upload for another device", "POST", v3 + "/keys/upload",
			obj{"device_keys": deviceKeys(patientUser, patientDev2)}, 403, "M_FORBIDDEN", nil},
		{"keys/upload for another user", "POST", v3 + "/keys/upload",
			obj{"device_keys": deviceKeys(nurse, patientDev)}, 403, "M_FORBIDDEN", nil},
		{"keys/upload with an unknown field", "POST", v3 + "/keys/upload",
			obj{"device_keys": deviceKeys(patientUser, patientDev), "extra": 1}, 403, "M_FORBIDDEN", nil},
		{"one-time keys signed by someone else", "POST", v3 + "/keys/upload",
			obj{"one_time_keys": oneTimeKeys(nurse, "NURSEPHONE")}, 403, "M_FORBIDDEN", nil},
		{"cross-signing keys of another user", "POST", v3 + "/keys/device_signing/upload",
			obj{"master_key": crossSigningKey(nurse, "master")}, 403, "M_FORBIDDEN", nil},
		{"cross-signing upload with interactive auth", "POST", v3 + "/keys/device_signing/upload",
			obj{"master_key": crossSigningKey(patientUser, "master"), "auth": obj{"type": "m.login.password"}}, 403, "M_FORBIDDEN", nil},
		{"a signature on a staff member's key", "POST", v3 + "/keys/signatures/upload",
			obj{string(nurse): obj{"nursemaster": crossSigningKey(nurse, "master")}}, 403, "M_FORBIDDEN", nil},
		{"a dehydrated device under a browser's device ID", "PUT", dehydrated,
			obj{"device_id": patientDev2, "device_data": obj{"algorithm": "a"}, "device_keys": deviceKeys(patientUser, patientDev2)}, 403, "M_FORBIDDEN", nil},
		{"a dehydrated device with another user's keys", "PUT", dehydrated,
			obj{"device_id": dehydratedID, "device_data": obj{"algorithm": "a"}, "device_keys": deviceKeys(nurse, dehydratedID)}, 403, "M_FORBIDDEN", nil},
		{"a browser device's events through the dehydrated endpoint", "POST", dehydrated + "/" + string(patientDev2) + "/events", obj{}, 403, "M_FORBIDDEN", nil},
		{"another user's secret storage", "GET", v3 + "/user/" + string(nurse) + "/account_data/m.cross_signing.master", nil, 403, "M_FORBIDDEN", nil},
		{"storing into another user's secret storage", "PUT", v3 + "/user/" + string(nurse) + "/account_data/m.cross_signing.master", ssssSecret(), 403, "M_FORBIDDEN", nil},
		{"the SMS ghost's account data", "GET", v3 + "/user/" + string(smsGhost) + "/account_data/m.secret_storage.default_key", nil, 403, "M_FORBIDDEN", nil},
		{"the patient's other account data", "GET", ownData + "m.direct", nil, 403, "M_FORBIDDEN", nil},
		{"storing push rules or ignored users", "PUT", ownData + "m.ignored_user_list", obj{"ignored_users": obj{}}, 403, "M_FORBIDDEN", nil},
		{"the megolm backup key", "GET", ownData + "m.megolm_backup.v1", nil, 403, "M_FORBIDDEN", nil},
		{"a secret storage key without an ID", "PUT", ownData + "m.secret_storage.key.", ssssKey(), 403, "M_FORBIDDEN", nil},
		{"a cross-signing type not on the list", "PUT", ownData + "m.cross_signing.trust", ssssSecret(), 403, "M_FORBIDDEN", nil},
		{"a cross-signing key in clear", "PUT", ownData + "m.cross_signing.master", obj{"key": "seed" + sentinel}, 403, "M_FORBIDDEN", nil},
		{"a secret with a clear field beside the ciphertext", "PUT", ownData + "m.cross_signing.master",
			func() obj { s := ssssSecret(); s["seed"] = "seed" + sentinel; return s }(), 403, "M_FORBIDDEN", nil},
		{"a secret encrypted under no key", "PUT", ownData + "m.cross_signing.self_signing", obj{"encrypted": obj{}}, 403, "M_FORBIDDEN", nil},
		{"a secret without its mac", "PUT", ownData + "m.cross_signing.self_signing",
			obj{"encrypted": obj{"prfKey1": obj{"iv": "aXY=", "ciphertext": "ct" + sentinel}}}, 403, "M_FORBIDDEN", nil},
		{"a key description of another algorithm", "PUT", ownData + "m.secret_storage.key.prfKey1",
			obj{"algorithm": "m.secret_storage.v0", "iv": "aXY=", "mac": "bWFj"}, 403, "M_FORBIDDEN", nil},
		{"a key description with a passphrase", "PUT", ownData + "m.secret_storage.key.prfKey1",
			func() obj {
				k := ssssKey()
				k["passphrase"] = obj{"algorithm": "m.pbkdf2", "salt": "s", "iterations": 1}
				return k
			}(), 403, "M_FORBIDDEN", nil},
		{"an empty default key", "PUT", ownData + "m.secret_storage.default_key", obj{"key": ""}, 403, "M_FORBIDDEN", nil},
		{"room account data", "PUT", ownData[:len(ownData)-len("account_data/")] + "rooms/" + string(secureRoom) + "/account_data/m.cross_signing.master", ssssSecret(), 403, "M_FORBIDDEN", nil},
		{"a body on the account data GET", "GET", ownData + "m.cross_signing.master", obj{"x": 1}, 400, "M_BAD_JSON", nil},
		{"deleting account data", "DELETE", ownData + "m.cross_signing.master", nil, 405, "M_UNRECOGNIZED", nil},
		{"room creation", "POST", v3 + "/createRoom", obj{"invite": []string{string(outsider)}}, 403, "M_FORBIDDEN", nil},
		{"profile change", "PUT", v3 + "/profile/" + string(patientUser) + "/displayname", obj{"displayname": "x"}, 403, "M_FORBIDDEN", nil},
		{"room messages history", "GET", v3 + "/rooms/" + string(secureRoom) + "/messages", nil, 403, "M_FORBIDDEN", nil},
		{"an old API version", "POST", "/_matrix/client/r0/keys/query", obj{"device_keys": obj{}}, 403, "M_FORBIDDEN", nil},
		{"media", "POST", "/_matrix/media/v3/upload", "x", 403, "M_FORBIDDEN", nil},
		{"an escaped slash smuggling a path", "PUT", v3 + "/rooms/" + string(secureRoom) + "%2Fstate%2Fm.room.name/send/m.room.encrypted/t", megolm(), 403, "M_FORBIDDEN", nil},
		{"a dot-dot segment", "POST", v3 + "/keys/upload/%2E%2E/%2E%2E/join/" + string(smsRoom), obj{}, 403, "M_FORBIDDEN", nil},
		{"an escaped slash in the dehydrated device route", "GET", dehydrated + "%2F..%2Fx", nil, 403, "M_FORBIDDEN", nil},
		{"an escaped slash in a room ID", "POST", v3 + "/rooms/" + string(secureRoom) + "%2Fx/receipt/m.read/$ev1", obj{}, 403, "M_FORBIDDEN", nil},
		{"a trailing slash", "POST", v3 + "/keys/query/", obj{"device_keys": obj{}}, 403, "M_FORBIDDEN", nil},
		{"a session without a patient device", "POST", v3 + "/keys/query", obj{"device_keys": obj{string(nurse): []string{}}}, 403, "M_FORBIDDEN",
			[]string{"X-Test-No-Device", "1"}},
		{"an unknown method", "PATCH", v3 + "/keys/upload", obj{}, 405, "M_UNRECOGNIZED", nil},
		{"a known path with the wrong method", "GET", v3 + "/keys/upload", nil, 405, "M_UNRECOGNIZED", nil},
		{"a body over the limit", "POST", v3 + "/keys/upload",
			obj{"one_time_keys": obj{"signed_curve25519:A": obj{"key": strings.Repeat("k", 70<<10)}}}, 413, "M_TOO_LARGE", nil},
		{"a body that is not JSON", "POST", v3 + "/keys/query", "device_keys=all", 400, "M_NOT_JSON", nil},
		{"a body that is a JSON array", "POST", v3 + "/keys/query", "[]", 400, "M_NOT_JSON", nil},
		{"two JSON values", "POST", v3 + "/keys/query", `{"device_keys":{}}{"device_keys":{"@outsider:clinic.example":[]}}`, 400, "M_NOT_JSON", nil},
		{"a body on the dehydrated GET", "GET", dehydrated, obj{"x": 1}, 400, "M_BAD_JSON", nil},
		{"a receipt without an event ID", "POST", v3 + "/rooms/" + string(secureRoom) + "/receipt/m.read/notanevent", obj{}, 400, "M_INVALID_PARAM", nil},
		{"a fully-read marker through receipt", "POST", v3 + "/rooms/" + string(secureRoom) + "/receipt/m.fully_read/$ev1", obj{}, 403, "M_FORBIDDEN", nil},
	}
	for _, tc := range denied {
		t.Run("denied/"+tc.name, func(t *testing.T) {
			h.hs.take()
			rw := h.do(tc.method, tc.path, tc.body, tc.header...)
			require.Equal(t, tc.status, rw.Code, rw.Body.String())
			assert.Equal(t, "application/json", rw.Header().Get("Content-Type"))
			var merr struct{ Errcode, Error string }
			require.NoError(t, json.Unmarshal(rw.Body.Bytes(), &merr))
			assert.Equal(t, tc.errcode, merr.Errcode)
			assert.NotEmpty(t, merr.Error, "the error says what is not allowed")
			for _, leak := range []string{sentinel, string(outsider), string(nurse), "hello", testASToken} {
				assert.NotContains(t, merr.Error, leak, "the error carries nothing of the request")
			}
			if tc.status == http.StatusMethodNotAllowed && tc.method == "GET" {
				assert.Equal(t, "POST", rw.Header().Get("Allow"))
			}
			assert.Empty(t, h.hs.take(), "nothing denied reaches the homeserver")
		})
	}

	t.Run("nothing secret in the log", func(t *testing.T) {
		logs := h.logs.String()
		require.NotEmpty(t, logs, "the proxy logs what it relays and refuses")
		assert.Contains(t, logs, `"reason":"non_member"`, "a refusal is logged with its reason")
		for _, secret := range []string{sentinel, testASToken, "browser_token", "session_cookie_value", "hello"} {
			assert.NotContains(t, logs, secret)
		}
	})
}

func TestProxyAnswers502WhenTheMembersCannotBeRead(t *testing.T) {
	h := newHarness(t)
	h.memErr = errors.New("homeserver down")
	rw := h.do("POST", v3+"/keys/query", obj{"device_keys": obj{string(nurse): []string{}}})
	assert.Equal(t, http.StatusBadGateway, rw.Code)
	assert.Empty(t, h.hs.take(), "without the member list nothing is relayed")
}

func TestProxyFollowsTheRoomsMembership(t *testing.T) {
	h := newHarness(t)
	body := obj{"messages": obj{string(clinician): obj{"*": olm()}}}
	require.Equal(t, http.StatusOK, h.do("PUT", v3+"/sendToDevice/m.room.encrypted/t1", body).Code)
	require.Len(t, h.hs.take(), 1)
	h.members = []id.UserID{patientUser, nurse} // the clinician left the secure room
	assert.Equal(t, http.StatusForbidden, h.do("PUT", v3+"/sendToDevice/m.room.encrypted/t2", body).Code)
	assert.Empty(t, h.hs.take())
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	good := Config{HomeserverURL: "http://127.0.0.1:8008", ASToken: "t", UserID: patientUser,
		DeviceIDs: []id.DeviceID{patientDev}, RoomID: secureRoom,
		Members: func(context.Context) ([]id.UserID, error) { return nil, nil }}
	_, err := New(good)
	require.NoError(t, err)
	for name, mutate := range map[string]func(*Config){
		"no homeserver": func(c *Config) { c.HomeserverURL = "" },
		"no as_token":   func(c *Config) { c.ASToken = "" },
		"no user":       func(c *Config) { c.UserID = "" },
		"no device":     func(c *Config) { c.DeviceIDs = nil },
		"no room":       func(c *Config) { c.RoomID = "" },
		"no members":    func(c *Config) { c.Members = nil },
	} {
		c := good
		mutate(&c)
		_, err := New(c)
		assert.Error(t, err, name)
	}
}

func parseQuery(t *testing.T, raw string) map[string][]string {
	t.Helper()
	q, err := url.ParseQuery(raw)
	require.NoError(t, err)
	return q
}
