//go:build e2eepatient

package e2ee

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

// passkeyAuthenticator is a platform passkey as a phone or laptop has one: CTAP2.1, internal
// transport, discoverable credentials, user verification that succeeds, and PRF (hmac-secret).
func passkeyAuthenticator() *webauthn.VirtualAuthenticatorOptions {
	return &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
		Transport:      webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, HasPrf: true,
		AutomaticPresenceSimulation: true,
	}
}

// rawGetCredentials is WebAuthn.getCredentials answered as plain JSON, to see every field
// Chromium reports for a credential (cdproto's struct would drop fields it does not know).
var rawGetCredentials = cdp.Command[webauthn.GetCredentialsParams, map[string]any]{Method: webauthn.CommandGetCredentials}

// rawAddCredential is WebAuthn.addCredential given a credential as getCredentials reported it,
// every field as it came (cdproto's struct would add CMTG fields this Chromium refuses).
var rawAddCredential = cdp.Command[map[string]any, struct{}]{Method: webauthn.CommandAddCredential}

// passkeyBrowser is one browser profile with a virtual passkey authenticator in its tab.
type passkeyBrowser struct {
	t     *testing.T
	ctx   context.Context
	close func()
	auth  webauthn.AuthenticatorID
}

func newPasskeyBrowser(t *testing.T) *passkeyBrowser {
	t.Helper()
	ctx, closeFn := testenv.NewBrowserProfile(t, true)
	_, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{})
	require.NoError(t, err)
	a, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: passkeyAuthenticator()})
	require.NoError(t, err)
	return &passkeyBrowser{t: t, ctx: ctx, close: closeFn, auth: a.AuthenticatorID}
}

func (b *passkeyBrowser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, expr)
	return v
}

// waitState waits until the page's status is one of states and returns it.
func (b *passkeyBrowser) waitState(what string, limit time.Duration, states ...string) string {
	b.t.Helper()
	list, _ := json.Marshal(states)
	expr := fmt.Sprintf(`(() => { const s = document.getElementById('status')?.dataset.state ?? ''; return %s.includes(s) ? s : ''; })()`, list)
	v, err := chromedp.Run(b.ctx, chromedp.Poll[string](expr, chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		errs, _ := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`window.__e2ee ? window.__e2ee.errors : ["no __e2ee"]`))
		state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById('status')?.dataset.state ?? ''`))
		require.NoError(b.t, err, "%s (page state %q, errors %v)", what, state, errs)
	}
	return v
}

// passkeyInfo is what the page reports of its passkey (window.__e2ee.passkey): never the PRF
// output or the key, a fingerprint of the PRF output (HKDF with a label of its own, 8 bytes).
type passkeyInfo struct {
	RPID                 string `json:"rp_id"`
	CreatedMS            int    `json:"created_ms"`
	AssertedMS           int    `json:"asserted_ms"`
	PRFEnabled           bool   `json:"prf_enabled"`
	PRFAtCreate          bool   `json:"prf_at_create"`
	CredentialID         string `json:"credential_id"`
	AssertedCredentialID string `json:"asserted_credential_id"`
	PRFInAssertion       bool   `json:"prf_in_assertion"`
	PRFResultFields      string `json:"prf_result_fields"`
	PRFBytes             int    `json:"prf_bytes"`
	Fingerprint          string `json:"fingerprint"`
}

func (b *passkeyBrowser) passkey() passkeyInfo {
	b.t.Helper()
	var p passkeyInfo
	require.NoError(b.t, json.Unmarshal([]byte(b.eval(`JSON.stringify(window.__e2ee.passkey ?? {})`)), &p))
	return p
}

// TestPasskeyRestoresInANewBrowserProfileOnSynapse is done-when line 4 of issue 18: a new
// browser profile with the same passkey reads a message sent while no page was open.
//
// The first browser's page cross-signs its device, registers a passkey (virtual authenticator,
// PRF), derives the pickle key from the PRF output and stores a dehydrated device (MSC3814)
// through the proxy; then the page goes. The nurse sends into the secure room. A second browser,
// a new profile holding a copy of the passkey (WebAuthn.getCredentials → addCredential), opens
// the page as a new device of the patient-web user, is handed the nurse's encrypted event (the
// inbox has no history for a device that did not exist when it was sent) and cannot decrypt it;
// it asks the passkey for the same PRF, rehydrates the device and then decrypts it.
func TestPasskeyRestoresInANewBrowserProfileOnSynapse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	modules, err := testenv.ElementCryptoAvailable()
	testenv.RequireDep(t, testenv.DepElementCrypto, err)
	assets := newTestPage(t, modules)
	const (
		second = id.DeviceID("PATIENTWEB2") // the new profile's device
		third  = id.DeviceID("PATIENTWEB3") // the fallback: the first profile again, storage wiped
		fourth = id.DeviceID("PATIENTWEB4") // the second restore: storage wiped again
	)
	rig := newPatientRigWith(t, ctx, rigOptions{noNode: true, moreDevices: []id.DeviceID{second, third, fourth}, mount: assets.mount})
	// WebAuthn takes no IP address as a relying party ID: the page is opened as localhost
	// (a secure context, like https).
	origin := strings.Replace(rig.pageURL, "127.0.0.1", "localhost", 1)
	require.NotEqual(t, rig.pageURL, origin)

	// ---- the first browser: enrol --------------------------------------------------------
	first := newPasskeyBrowser(t)
	started := time.Now()
	require.NoError(t, chromedp.Do(first.ctx, chromedp.Navigate(origin+"/e2ee/page?passkey=enrol")))
	state := first.waitState("the first page never stored its dehydrated device", 2*time.Minute, "dehydrated", "enrol-failed", "failed")
	require.Equal(t, "dehydrated", state, "errors: %s", first.eval(`JSON.stringify(window.__e2ee.errors)`))
	t.Logf("first profile: navigation → dehydrated device stored in %s; page marks %s", time.Since(started).Round(time.Millisecond), first.eval(`JSON.stringify(window.__e2ee.marks)`))
	enrolled := first.passkey()
	assert.True(t, enrolled.PRFEnabled, "the passkey supports PRF")
	assert.Equal(t, 32, enrolled.PRFBytes, "the PRF output is 32 bytes")
	assert.Equal(t, "localhost", enrolled.RPID)
	assert.Equal(t, enrolled.CredentialID, enrolled.AssertedCredentialID, "the PRF came from the passkey just registered")
	t.Logf("passkey: created in %d ms (PRF output at creation: %v), PRF assertion in %d ms", enrolled.CreatedMS, enrolled.PRFAtCreate, enrolled.AssertedMS)
	var dehydrated struct {
		DeviceID       string `json:"device_id"`
		Algorithm      string `json:"algorithm"`
		OneTimeKeys    int    `json:"one_time_keys"`
		FallbackKeys   int    `json:"fallback_keys"`
		Signatures     int    `json:"signatures"`
		DehydratedFlag bool   `json:"dehydrated_flag"`
		TookMS         int    `json:"took_ms"`
	}
	require.NoError(t, json.Unmarshal([]byte(first.eval(`JSON.stringify(window.__e2ee.dehydrated)`)), &dehydrated))
	t.Logf("dehydrated device: algorithm %s, %d one-time keys, %d fallback keys, %d signatures by the patient-web user, dehydrated flag %v; create+upload %d ms",
		dehydrated.Algorithm, dehydrated.OneTimeKeys, dehydrated.FallbackKeys, dehydrated.Signatures, dehydrated.DehydratedFlag, dehydrated.TookMS)
	require.NotEmpty(t, dehydrated.DeviceID)
	assert.NotEqual(t, rig.dev.String(), dehydrated.DeviceID)
	assert.Equal(t, 2, dehydrated.Signatures, "the dehydrated device's keys are signed by itself and the patient's self-signing key")
	var secrets struct {
		Secrets  int `json:"secrets"`
		Requests int `json:"requests"`
		TookMS   int `json:"took_ms"`
	}
	require.NoError(t, json.Unmarshal([]byte(first.eval(`JSON.stringify(window.__e2ee.secrets)`)), &secrets))
	t.Logf("secret storage: %d cross-signing keys stored in %d requests in %d ms", secrets.Secrets, secrets.Requests, secrets.TookMS)
	assert.Equal(t, 3, secrets.Secrets)
	assertSecretStorage(t, ctx, rig)

	// The homeserver holds it (as the appservice reads it, masquerading as the patient-web user).
	var onServer struct {
		DeviceID   string         `json:"device_id"`
		DeviceData map[string]any `json:"device_data"`
	}
	_, err = rig.as.MakeRequest(ctx, http.MethodGet, rig.as.BuildURL(mautrix.ClientURLPath{"unstable", msc3814, "dehydrated_device"}), nil, &onServer)
	require.NoError(t, err)
	assert.Equal(t, dehydrated.DeviceID, onServer.DeviceID)

	// Chromium's copy of the passkey, as WebAuthn.getCredentials reports it: field names only.
	raw, err := chromedp.Call(first.ctx, rawGetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: first.auth})
	require.NoError(t, err)
	rawCreds, _ := raw["credentials"].([]any)
	require.Len(t, rawCreds, 1)
	var fields []string
	for k := range rawCreds[0].(map[string]any) {
		fields = append(fields, k)
	}
	slices.Sort(fields)
	t.Logf("WebAuthn.getCredentials reports these fields of the passkey: %v", fields)
	passkey := rawCreds[0].(map[string]any)
	assert.Equal(t, true, passkey["isResidentCredential"])
	assert.Equal(t, enrolled.RPID, passkey["rpId"])

	// The page goes (its store is memory: nothing of the device stays in the profile), the
	// first browser stays, without a page of ours, for the fallback below.
	require.NoError(t, chromedp.Do(first.ctx, chromedp.Navigate("about:blank")))

	// ---- no page open: the nurse writes -------------------------------------------------
	// The nurse excludes insecure devices (Element's setting, MSC4153): room keys only for
	// devices their owner signed. A restored device gets new keys only if it signs itself.
	staff := testenv.StartElementAgent(t, rig.hs.URL(), rig.nurse.String(), rig.nursePassword,
		testenv.ElementOptions{CrossSign: true, ExcludeInsecureDevices: true})
	_, err = staff.WaitJoined(ctx, rig.room.String())
	require.NoError(t, err)
	// elementView is the nurse's Element's view of the patient-web user's devices: device
	// ID → signed by its owner.
	elementView := func() map[string]bool {
		t.Helper()
		devices, err := staff.Devices(ctx, rig.patient.String())
		require.NoError(t, err)
		view := map[string]bool{}
		for _, d := range devices {
			view[d.DeviceID] = d.SignedByOwner
		}
		return view
	}
	seen := elementView()
	t.Logf("Element's view of the patient-web user's devices (device → signed by owner): %v", seen)
	assert.Equal(t, map[string]bool{rig.dev.String(): true, dehydrated.DeviceID: true}, seen,
		"Element sees the closed page's device and the dehydrated device, both signed by the patient")
	// send has the nurse send body and returns its event ID and the event as the homeserver
	// holds it (encrypted), as a JS string literal for the page's inject.
	send := func(body string) (id.EventID, []byte) {
		t.Helper()
		ev, _, err := staff.Send(ctx, rig.room.String(), body)
		require.NoError(t, err)
		var wire json.RawMessage
		_, err = rig.as.MakeRequest(ctx, http.MethodGet, rig.as.BuildClientURL("v3", "rooms", rig.room, "event", ev), nil, &wire)
		require.NoError(t, err)
		require.NotContains(t, string(wire), body, "the nurse's message is encrypted on the homeserver")
		js, _ := json.Marshal(string(wire))
		return id.EventID(ev), js
	}
	const sentinel = "staff-sentinel-e804: your prescription is ready"
	staffEvent, wireJS := send(sentinel)

	// elementSees polls until the nurse's Element lists device of the patient-web user with
	// signedByOwner as wanted, and returns how long that took.
	elementSees := func(device string, signed bool, what string) time.Duration {
		t.Helper()
		started := time.Now()
		var last map[string]bool
		for time.Since(started) < 45*time.Second {
			last = elementView()
			if got, ok := last[device]; ok && got == signed {
				return time.Since(started)
			}
			time.Sleep(250 * time.Millisecond)
		}
		require.Failf(t, "Element's view of the patient's devices", "%s: never listed with signed_by_owner=%v; last view %v", what, signed, last)
		return 0
	}

	// restore opens the page as device in browser b, hands it the nurse's event (wire, as
	// send returns it), checks it cannot decrypt it and that Element lists the new device as
	// not signed by its owner, then restores with the passkey. It returns the page's state.
	restore := func(b *passkeyBrowser, device id.DeviceID, name string, wire []byte) (string, passkeyInfo) {
		require.NoError(t, rig.as.CreateDeviceMSC4190(ctx, device, "Patient browser"))
		rig.inbox.AddDevice(Device{rig.patient, device})
		rig.session.Store(&device)
		opened := time.Now()
		require.NoError(t, chromedp.Do(b.ctx, chromedp.Navigate(origin+"/e2ee/page?passkey=restore")))
		b.waitState(name+": the page never got ready to restore", 2*time.Minute, "awaiting-passkey")
		assert.Equal(t, device.String(), b.eval(`document.getElementById('app').dataset.device`))
		took := elementSees(device.String(), false, name+": the new device before restoring")
		t.Logf("%s: Element lists the new device as not signed by its owner (insecure) %s after asking", name, took.Round(time.Millisecond))
		b.eval(`window.__e2ee.inject(` + string(wire) + `).then(() => '')`)
		var before struct {
			Undecrypted int `json:"undecrypted"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.eval(`JSON.stringify(window.__e2ee.device.stats())`)), &before))
		assert.Equal(t, 1, before.Undecrypted, "%s: before restoring, the new device cannot decrypt the nurse's message", name)
		assert.Equal(t, "0", b.eval(`String(document.querySelectorAll('#messages li.theirs').length)`))
		restoreStarted := time.Now()
		b.eval(`window.__e2ee.restore().then(() => '')`)
		st := b.waitState(name+": restore never finished", time.Minute, "rehydrated", "restore-failed")
		t.Logf("%s: navigation → ready to restore %s; restore → %s in %s; errors %s", name,
			restoreStarted.Sub(opened).Round(time.Millisecond), st, time.Since(restoreStarted).Round(time.Millisecond), b.eval(`JSON.stringify(window.__e2ee.errors)`))
		return st, b.passkey()
	}
	// shows waits until the page shows event ev with text, from the nurse's Element device.
	shows := func(b *passkeyBrowser, name string, ev id.EventID, text string, limit time.Duration) {
		t.Helper()
		sel := fmt.Sprintf(`document.querySelector('#messages li.theirs[data-event-id="%s"]')`, ev)
		got, err := chromedp.Run(b.ctx, chromedp.Poll[string](sel+`?.textContent ?? ''`, chromedp.WithPollingTimeout(limit)))
		require.NoError(t, err, "%s: the page never showed the nurse's message; errors %s", name, b.eval(`JSON.stringify(window.__e2ee.errors)`))
		assert.Equal(t, text, got, name)
		assert.Equal(t, staff.DeviceID, b.eval(sel+`.dataset.senderDevice`))
	}
	// restored checks what the page did after its passkey: read the nurse's message ev (text)
	// from the dehydrated device fromDevice, import the cross-signing keys and sign itself,
	// store a fresh dehydrated device. It returns the fresh device's ID.
	restored := func(b *passkeyBrowser, name, fromDevice string, ev id.EventID, text string) string {
		t.Helper()
		var r struct {
			DeviceID  string `json:"device_id"`
			Events    int    `json:"events"`
			RoomKeys  int    `json:"room_keys"`
			Pages     int    `json:"pages"`
			FetchedMS int    `json:"fetched_ms"`
			OpenedMS  int    `json:"opened_ms"`
			TookMS    int    `json:"took_ms"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.eval(`JSON.stringify(window.__e2ee.rehydrated)`)), &r))
		t.Logf("%s: rehydrated %s: %d to-device events in %d pages, %d room keys; fetched %d ms, opened %d ms, done %d ms; page marks %s",
			name, r.DeviceID, r.Events, r.Pages, r.RoomKeys, r.FetchedMS, r.OpenedMS, r.TookMS, b.eval(`JSON.stringify(window.__e2ee.marks)`))
		assert.Equal(t, fromDevice, r.DeviceID)
		assert.Positive(t, r.RoomKeys, "the dehydrated device had received the nurse's room key")
		shows(b, name+": the message sent while no page was open", ev, text, 10*time.Second)
		stats := b.eval(`JSON.stringify(window.__e2ee.device.stats())`)
		assert.Contains(t, stats, `"undecrypted":0`)
		assert.Contains(t, stats, `"refused":0`, "the proxy refused none of the page's requests")

		// (a) the cross-signing keys, from secret storage.
		var xs struct {
			HasMaster      bool `json:"has_master"`
			HasSelfSigning bool `json:"has_self_signing"`
			HasUserSigning bool `json:"has_user_signing"`
			KeyCheck       bool `json:"key_check"`
			SignedLocally  bool `json:"signed_locally"`
			FetchedMS      int  `json:"fetched_ms"`
			TookMS         int  `json:"took_ms"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.eval(`JSON.stringify(window.__e2ee.crossSigning)`)), &xs))
		t.Logf("%s: cross-signing keys read and decrypted from secret storage in %d ms (key check %v), imported and this device signed at %d ms (signed in its own store: %v)",
			name, xs.FetchedMS, xs.KeyCheck, xs.TookMS, xs.SignedLocally)
		assert.True(t, xs.KeyCheck, "the passkey's secret storage key matches the stored key check")
		assert.True(t, xs.HasMaster && xs.HasSelfSigning && xs.HasUserSigning, "%s: all three cross-signing keys imported", name)

		// (b) a fresh dehydrated device in place of the one opened.
		var fresh struct {
			DeviceID       string `json:"device_id"`
			OneTimeKeys    int    `json:"one_time_keys"`
			Signatures     int    `json:"signatures"`
			DehydratedFlag bool   `json:"dehydrated_flag"`
			TookMS         int    `json:"took_ms"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.eval(`JSON.stringify(window.__e2ee.redehydrated)`)), &fresh))
		t.Logf("%s: fresh dehydrated device %s (%d one-time keys, %d signatures) stored in %d ms", name, fresh.DeviceID, fresh.OneTimeKeys, fresh.Signatures, fresh.TookMS)
		require.NotEmpty(t, fresh.DeviceID)
		assert.NotEqual(t, fromDevice, fresh.DeviceID, "a new dehydrated device, not the old one again")
		assert.Equal(t, 2, fresh.Signatures, "the fresh dehydrated device is signed by itself and the imported self-signing key")
		var onServer struct {
			DeviceID string `json:"device_id"`
		}
		_, err := rig.as.MakeRequest(ctx, http.MethodGet, rig.as.BuildURL(mautrix.ClientURLPath{"unstable", msc3814, "dehydrated_device"}), nil, &onServer)
		require.NoError(t, err)
		assert.Equal(t, fresh.DeviceID, onServer.DeviceID, "the homeserver holds the fresh dehydrated device")
		return fresh.DeviceID
	}

	// ---- a new browser profile with a copy of the passkey ---------------------------------
	newProfile := newPasskeyBrowser(t)
	_, err = chromedp.Call(newProfile.ctx, rawAddCredential, map[string]any{"authenticatorId": newProfile.auth, "credential": passkey})
	require.NoError(t, err)
	st, copied := restore(newProfile, second, "new profile", wireJS)
	samePRF := copied.Fingerprint != "" && copied.Fingerprint == enrolled.Fingerprint
	t.Logf("new profile: the copied passkey asserted (same credential: %v); PRF extension in the assertion %v (fields %q; first profile's %q), PRF output %d bytes; the same as the first profile's: %v",
		copied.AssertedCredentialID == enrolled.CredentialID, copied.PRFInAssertion, copied.PRFResultFields, enrolled.PRFResultFields, copied.PRFBytes, samePRF)
	assert.Equal(t, enrolled.CredentialID, copied.AssertedCredentialID, "the new profile's authenticator holds the same credential")
	b, device, name := newProfile, second, "new profile"
	if !samePRF {
		// Measured (Chromium 156): the copy asserts (same credential ID, user verified), but its
		// PRF extension result is {} with no `results`: WebAuthn.getCredentials exports no
		// hmac-secret seed (the fields are logged above) and a credential added with addCredential
		// has none, so the new profile gets no PRF output and cannot derive the key. What a real
		// passkey synced to a new device does (the same PRF output, the point of the extension)
		// cannot be shown with a copied virtual credential. The closest honest test: the first
		// profile, its storage for the origin wiped, its own authenticator (the same PRF seed),
		// opening the page as a new device of the patient-web user.
		assert.Equal(t, "restore-failed", st, "a different PRF output must not open the dehydrated device")
		newProfile.close()
		_, err = chromedp.Call(first.ctx, storage.ClearDataForOrigin, storage.ClearDataForOriginParams{Origin: origin, StorageTypes: "all"})
		require.NoError(t, err)
		b, device, name = first, third, "first profile, storage wiped"
		var again passkeyInfo
		st, again = restore(b, device, name, wireJS)
		assert.Equal(t, enrolled.Fingerprint, again.Fingerprint, "the same authenticator gives the same PRF output")
		t.Logf("done-when 4 shown with the same authenticator in the same profile (storage wiped, a new device), not with a new profile: the copied passkey gives no PRF output")
	}
	require.Equal(t, "rehydrated", st, "errors: %s", b.eval(`JSON.stringify(window.__e2ee.errors)`))
	freshID := restored(b, name, dehydrated.DeviceID, staffEvent, sentinel)

	// (a) Element sees the restored device signed by its owner, and shares a new message's
	// room key with it although it excludes insecure devices.
	took := elementSees(device.String(), true, name+": the restored device after signing itself")
	t.Logf("%s: Element lists the restored device as signed by its owner %s after asking", name, took.Round(time.Millisecond))
	const afterRestore = "staff-sentinel-e805: the lab results are back"
	sentAt := time.Now()
	ev2, _ := send(afterRestore)
	shows(b, name+": a new message after the restore, the nurse excluding insecure devices", ev2, afterRestore, 30*time.Second)
	t.Logf("%s: the nurse's new message decrypted in the restored page %s after sending", name, time.Since(sentAt).Round(time.Millisecond))
	assert.Contains(t, b.eval(`JSON.stringify(window.__e2ee.device.stats())`), `"undecrypted":0`)
	if samePRF {
		t.Logf("no unsigned device to compare with: the new profile restored")
	} else {
		// The control: the new profile's device, whose restore failed, never signed itself;
		// for the same message the nurse's Element withholds the key from it (m.unverified).
		var wire struct {
			Content struct {
				SessionID string `json:"session_id"`
			} `json:"content"`
		}
		_, err = rig.as.MakeRequest(ctx, http.MethodGet, rig.as.BuildClientURL("v3", "rooms", rig.room, "event", ev2), nil, &wire)
		require.NoError(t, err)
		code, session := withheldCode(t, ctx, rig, second)
		assert.Equal(t, "m.unverified", code, "the unsigned device of the failed restore gets no room key for the new message")
		assert.Equal(t, wire.Content.SessionID, session, "withheld: the session of the nurse's new message")
		t.Logf("the failed restore's unsigned device %s got m.room_key.withheld %s for the same message", second, code)
	}

	// (b) the fresh dehydrated device, signed, receives while no page is open; a second
	// restore (storage wiped again, another new device) reads it.
	took = elementSees(freshID, true, "the fresh dehydrated device")
	t.Logf("Element lists the fresh dehydrated device as signed by its owner %s after asking", took.Round(time.Millisecond))
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Navigate("about:blank")))
	const secondGap = "staff-sentinel-e806: please call the clinic tomorrow"
	ev3, wire3 := send(secondGap)
	_, err = chromedp.Call(b.ctx, storage.ClearDataForOrigin, storage.ClearDataForOriginParams{Origin: origin, StorageTypes: "all"})
	require.NoError(t, err)
	st, _ = restore(b, fourth, "second restore", wire3)
	require.Equal(t, "rehydrated", st, "errors: %s", b.eval(`JSON.stringify(window.__e2ee.errors)`))
	restored(b, "second restore", freshID, ev3, secondGap)
	took = elementSees(fourth.String(), true, "second restore: the restored device after signing itself")
	t.Logf("second restore: Element lists the restored device as signed by its owner %s after asking", took.Round(time.Millisecond))
	view := elementView()
	t.Logf("Element's view of the patient-web user's devices at the end (device → signed by owner): %v", view)
	assert.NotContains(t, view, dehydrated.DeviceID, "the first dehydrated device was replaced, not kept beside the fresh one")
	assert.NotContains(t, view, freshID, "the first restore's dehydrated device was replaced by the second restore's")
}

// assertSecretStorage checks the patient-web user's account data holds the cross-signing keys
// as Element's secret storage does: a default key, its aes-hmac-sha2 description (a key check,
// no passphrase) and the three private keys encrypted under it (AES-CTR: the ciphertext as long
// as the 43-character unpadded base64 of a 32-byte seed).
func assertSecretStorage(t *testing.T, ctx context.Context, rig *patientRig) {
	t.Helper()
	get := func(typ string, out any) {
		t.Helper()
		_, err := rig.as.MakeRequest(ctx, http.MethodGet, rig.as.BuildClientURL("v3", "user", rig.patient, "account_data", typ), nil, out)
		require.NoError(t, err, typ)
	}
	var def struct {
		Key string `json:"key"`
	}
	get("m.secret_storage.default_key", &def)
	require.NotEmpty(t, def.Key)
	var desc map[string]any
	get("m.secret_storage.key."+def.Key, &desc)
	assert.Equal(t, "m.secret_storage.v1.aes-hmac-sha2", desc["algorithm"])
	assert.NotEmpty(t, desc["iv"])
	assert.NotEmpty(t, desc["mac"])
	assert.NotContains(t, desc, "passphrase")
	ciphertexts := map[string]bool{}
	for _, name := range []string{"m.cross_signing.master", "m.cross_signing.self_signing", "m.cross_signing.user_signing"} {
		var sec struct {
			Encrypted map[string]struct {
				IV         string `json:"iv"`
				Ciphertext string `json:"ciphertext"`
				MAC        string `json:"mac"`
			} `json:"encrypted"`
		}
		get(name, &sec)
		require.Len(t, sec.Encrypted, 1, name)
		e, ok := sec.Encrypted[def.Key]
		require.True(t, ok, "%s is encrypted under the default key", name)
		ct, err := base64.StdEncoding.DecodeString(e.Ciphertext)
		require.NoError(t, err, name)
		assert.Len(t, ct, 43, "%s: a 32-byte seed in unpadded base64, encrypted", name)
		assert.NotEmpty(t, e.IV)
		assert.NotEmpty(t, e.MAC)
		ciphertexts[e.Ciphertext] = true
	}
	assert.Len(t, ciphertexts, 3, "three different secrets")
}

// withheldCode reads what the inbox filed for device until an m.room_key.withheld comes (20 s at
// most) and returns its code and session.
func withheldCode(t *testing.T, ctx context.Context, rig *patientRig, device id.DeviceID) (string, string) {
	t.Helper()
	since := ""
	for {
		pollCtx, stop := context.WithTimeout(ctx, 20*time.Second)
		b, next, err := rig.inbox.Next(pollCtx, Device{rig.patient, device}, since)
		stop()
		require.NoError(t, err)
		require.NotEqual(t, since, next, "no m.room_key.withheld reached %s within 20 s", device)
		since = next
		for _, ev := range b.ToDevice.Events {
			if ev.Type == event.ToDeviceRoomKeyWithheld.Type || ev.Type == "org.matrix.room_key.withheld" {
				var content struct {
					Code      string `json:"code"`
					SessionID string `json:"session_id"`
				}
				require.NoError(t, json.Unmarshal(ev.Content, &content))
				return content.Code, content.SessionID
			}
		}
	}
}
