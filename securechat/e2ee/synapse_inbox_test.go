//go:build e2eepatient

package e2ee

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

// inboxRegistration is the spike's registration with transactions: the homeserver pushes to
// url, with to-device events (MSC2409, push_ephemeral) and the MSC3202 extensions (device
// lists, key counts) for the devices the appservice masquerades as (MSC4190).
const inboxRegistration = `id: carebridge-e2ee18-inbox
url: %s
as_token: %s
hs_token: %s
sender_localpart: carebridge_e2ee
rate_limited: false
namespaces:
  users:
  - exclusive: true
    regex: '@pw_.*:localhost'
io.element.msc4190: true
de.sorunome.msc2409.push_ephemeral: true
org.matrix.msc3202: true
`

// TestToDeviceReachesThePatientPageFromSynapse: on the project's Synapse, a nurse's client
// sends a to-device message to each of a patient's two browser devices; Synapse pushes them
// in appservice transactions to the listener the bridge's hook would be (TransactionTee in
// front of a stand-in for mautrix's handler), which files them in the Inbox; each device's
// long poll on the events endpoint returns its own message and not the other's, with the
// device's one-time key count, and the nurse's new device as a device list change.
func TestToDeviceReachesThePatientPageFromSynapse(t *testing.T) {
	const (
		asToken = "as_token_e2ee18_inbox_91c3"
		hsToken = "hs_token_e2ee18_inbox_4d08"
		dev1    = id.DeviceID("PATIENTWEB1")
		dev2    = id.DeviceID("PATIENTWEB2")
	)
	patient := id.UserID("@pw_6f1c2a:localhost")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// The bridge's side, made below once the homeserver runs.
	var as *mautrix.Client
	var roomID atomic.Value
	inbox, err := NewInbox(InboxConfig{
		Devices: []Device{{patient, dev1}, {patient, dev2}},
		Members: func(ctx context.Context, p id.UserID) ([]id.UserID, error) {
			room, _ := roomID.Load().(id.RoomID)
			if p != patient || room == "" {
				return nil, nil
			}
			resp, err := as.JoinedMembers(ctx, room)
			if err != nil {
				return nil, err
			}
			var members []id.UserID
			for u := range resp.Joined {
				members = append(members, u)
			}
			return members, nil
		},
	})
	require.NoError(t, err)
	var txns atomic.Int64
	var fieldsMu sync.Mutex
	fields := map[string]bool{} // the transaction fields Synapse used, to report which
	appserviceHandler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// Stands for mautrix's PutTransaction (and the other appservice endpoints).
		if r.Method == http.MethodPut {
			txns.Add(1)
			var body map[string]json.RawMessage
			if json.NewDecoder(r.Body).Decode(&body) == nil {
				fieldsMu.Lock()
				for k := range body {
					fields[k] = true
				}
				fieldsMu.Unlock()
			}
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte("{}"))
	})
	listener := httptest.NewServer(TransactionTee(inbox, hsToken)(appserviceHandler))
	defer listener.Close()

	hs := testenv.NewSynapse(t)
	reg := filepath.Join(t.TempDir(), "registration.yaml")
	require.NoError(t, os.WriteFile(reg, []byte(fmt.Sprintf(inboxRegistration, listener.URL, asToken, hsToken)), 0o600))
	hs.Start(reg)
	hs.CreateUser(t, "nurse", "correct-horse-battery")
	nurse := hs.Login(t, "nurse", "correct-horse-battery")

	as, err = mautrix.NewClient(hs.URL(), patient, asToken)
	require.NoError(t, err)
	as.SetAppServiceUserID = true
	_, _, err = as.Register(ctx, &mautrix.ReqRegister[any]{Username: patient.Localpart(), Type: mautrix.AuthTypeAppservice, InhibitLogin: true})
	require.NoError(t, err)
	deviceClient := func(device id.DeviceID) *mautrix.Client {
		c, err := mautrix.NewClient(hs.URL(), patient, asToken)
		require.NoError(t, err)
		c.SetAppServiceUserID = true
		require.NoError(t, c.CreateDeviceMSC4190(ctx, device, "Patient browser"))
		return c
	}
	web1 := deviceClient(dev1)
	deviceClient(dev2)
	room, err := as.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{nurse.UserID}})
	require.NoError(t, err)
	roomID.Store(room.RoomID)
	_, err = nurse.JoinRoomByID(ctx, room.RoomID)
	require.NoError(t, err)

	// PATIENTWEB1 publishes five one-time keys (as its page would, through the proxy).
	acc := crypto.NewOlmAccount()
	oneTime := signedOneTimeKeys(t, acc, patient, dev1, 5)
	uploaded, err := web1.UploadKeys(ctx, &mautrix.ReqUploadKeys{OneTimeKeys: oneTime})
	require.NoError(t, err)
	require.Equal(t, 5, uploaded.OneTimeKeyCounts.SignedCurve25519)

	// The pages: the events endpoint behind a stand-in session that names each one's device.
	page := func(device id.DeviceID) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			inbox.EventsHandler(patient).ServeHTTP(rw, r.WithContext(WithDevice(r.Context(), device)))
		}))
	}
	page1, page2 := page(dev1), page(dev2)
	defer page1.Close()
	defer page2.Close()
	poll := func(srv *httptest.Server, since string) *Batch {
		q := url.Values{"timeout": {"20000"}, "since": {since}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/e2ee/events?"+q.Encode(), nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var b Batch
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
		return &b
	}
	// pollUntil long-polls from since (taking each batch, as a page does) until done holds for
	// what was taken so far, and returns all of it; its last batch's cursor is where the page
	// goes on from.
	type taken struct {
		events  []ToDeviceEvent
		changed []id.UserID
		last    *Batch
	}
	pollUntil := func(srv *httptest.Server, since, what string, done func(*taken) bool) *taken {
		got := &taken{}
		for !done(got) {
			require.NoError(t, ctx.Err(), "waiting for %s", what)
			b := poll(srv, since)
			got.events = append(got.events, b.ToDevice.Events...)
			got.changed = append(got.changed, b.DeviceLists.Changed...)
			got.last, since = b, b.NextBatch
		}
		return got
	}
	markers := func(evs []ToDeviceEvent) []string {
		var out []string
		for _, ev := range evs {
			var c struct {
				Marker string `json:"marker"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			out = append(out, c.Marker)
		}
		return out
	}

	// The page of PATIENTWEB1 is already waiting when the nurse sends.
	type result struct{ got *taken }
	first := make(chan result, 1)
	go func() {
		first <- result{pollUntil(page1, "", "PATIENTWEB1's message", func(g *taken) bool {
			return slices.Contains(markers(g.events), "for-web1") && g.last != nil &&
				g.last.OTKCounts[id.KeyAlgorithmSignedCurve25519] == 5
		})}
	}()
	require.Eventually(t, func() bool { return inbox.waiters(Device{patient, dev1}) == 1 }, time.Minute, time.Millisecond)
	started := time.Now()
	_, err = nurse.SendToDevice(ctx, event.NewEventType("org.carebridge.test"), &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{patient: {
			dev1: {Raw: map[string]any{"marker": "for-web1"}},
			dev2: {Raw: map[string]any{"marker": "for-web2"}},
		}},
	})
	require.NoError(t, err)
	var got1 *taken
	select {
	case r := <-first:
		got1 = r.got
	case <-ctx.Done():
		t.Fatal("PATIENTWEB1's page never got its message")
	}
	t.Logf("to-device nurse → PATIENTWEB1's long poll: %s, %d transactions so far", time.Since(started).Round(time.Millisecond), txns.Load())
	assert.Equal(t, []string{"for-web1"}, markers(got1.events), "PATIENTWEB1 gets its own message only")
	assert.Equal(t, nurse.UserID, got1.events[0].Sender)
	assert.Equal(t, "org.carebridge.test", got1.events[0].Type)
	assert.Equal(t, 5, got1.last.OTKCounts[id.KeyAlgorithmSignedCurve25519], "Synapse's count for PATIENTWEB1 came with it")
	if assert.NotNil(t, got1.last.FallbackKeys, "Synapse reported the unused fallback key types") {
		assert.Empty(t, *got1.last.FallbackKeys, "none uploaded: the page's OlmMachine would upload one")
	}

	got2 := pollUntil(page2, "", "PATIENTWEB2's message", func(g *taken) bool { return len(g.events) > 0 })
	assert.Equal(t, []string{"for-web2"}, markers(got2.events), "PATIENTWEB2 gets its own message only")
	count2, ok := got2.last.OTKCounts[id.KeyAlgorithmSignedCurve25519]
	assert.True(t, ok, "Synapse reported PATIENTWEB2's count too")
	assert.Equal(t, 0, count2, "its own count: none uploaded")

	// The nurse signs in on a new phone: the page learns her device list changed.
	hs.Login(t, "nurse", "correct-horse-battery")
	got := pollUntil(page1, got1.last.NextBatch, "the nurse's device list change", func(g *taken) bool { return slices.Contains(g.changed, nurse.UserID) })
	assert.Empty(t, got.events, "nothing else was sent to PATIENTWEB1, and what it took is not given again")
	for _, u := range got.changed {
		assert.Contains(t, []id.UserID{nurse.UserID, patient}, u, "only members of the secure room are named")
	}
	assert.Positive(t, txns.Load(), "the stand-in for mautrix's handler saw the transactions too")
	fieldsMu.Lock()
	defer fieldsMu.Unlock()
	var used []string
	for k := range fields {
		used = append(used, k)
	}
	slices.Sort(used)
	t.Logf("%d transactions; fields Synapse used: %v", txns.Load(), used)
	assert.True(t, fields["de.sorunome.msc2409.to_device"] || fields["to_device"], "to-device came in the transactions")
}
