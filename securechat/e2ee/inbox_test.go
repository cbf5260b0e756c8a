//go:build e2eepatient

package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
)

const (
	otherPatient = id.UserID("@pw_0d33e1:clinic.example")
	testHSToken  = "hs_token_e2ee18_7e21c4"
)

var (
	devA  = Device{patientUser, patientDev}
	devA2 = Device{patientUser, patientDev2}
	// devB has the same device ID as devA under another patient: the inbox keys on both.
	devB = Device{otherPatient, patientDev}
)

type inboxHarness struct {
	in      *Inbox
	mu      sync.Mutex
	members map[id.UserID][]id.UserID
	memErr  error
	txn     int
}

func newInboxHarness(t *testing.T, queueLen int) *inboxHarness {
	h := &inboxHarness{members: map[id.UserID][]id.UserID{
		patientUser:  {patientUser, nurse},
		otherPatient: {otherPatient, clinician},
	}}
	in, err := NewInbox(InboxConfig{
		Devices: []Device{devA, devA2, devB}, QueueLen: queueLen,
		Members: func(ctx context.Context, patient id.UserID) ([]id.UserID, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.members[patient], h.memErr
		},
	})
	require.NoError(t, err)
	h.in = in
	return h
}

// file files a transaction given as the homeserver's JSON, through mautrix's parser and the
// adapter, as the bridge's hook would.
func (h *inboxHarness) file(t *testing.T, body string) {
	t.Helper()
	require.NoError(t, h.fileErr(body))
}

func (h *inboxHarness) fileErr(body string) error {
	var txn appservice.Transaction
	if err := json.Unmarshal([]byte(body), &txn); err != nil {
		return err
	}
	h.txn++
	return h.in.File(context.Background(), fmt.Sprintf("txn%d", h.txn), FromTransaction(&txn))
}

// next polls without waiting (an expired context): what is there now.
func (h *inboxHarness) next(t *testing.T, d Device, since string) (*Batch, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, next, err := h.in.Next(ctx, d, since)
	require.NoError(t, err)
	return b, next
}

func toDeviceJSON(toUser id.UserID, toDevice id.DeviceID, marker string) string {
	return fmt.Sprintf(`{"type":"m.room.encrypted","sender":%q,"to_user_id":%q,"to_device_id":%q,`+
		`"content":{"algorithm":"m.olm.v1.curve25519-aes-sha2","sender_key":"k","ciphertext":{"c":{"type":0,"body":%q}}}}`,
		nurse, toUser, toDevice, marker)
}

func bodies(b *Batch) []string {
	var out []string
	for _, ev := range b.ToDevice.Events {
		var c struct {
			Ciphertext map[string]struct{ Body string } `json:"ciphertext"`
		}
		_ = json.Unmarshal(ev.Content, &c)
		out = append(out, c.Ciphertext["c"].Body)
	}
	return out
}

func TestInboxFilesToDeviceEventsForItsOwnDevicesOnly(t *testing.T) {
	h := newInboxHarness(t, 0)
	// Unstable (MSC2409) field, as Synapse 1.163 sends it.
	h.file(t, `{"events":[],"de.sorunome.msc2409.to_device":[`+strings.Join([]string{
		toDeviceJSON(patientUser, patientDev, "for-A"),
		toDeviceJSON(patientUser, patientDev2, "for-A2"),
		toDeviceJSON(otherPatient, patientDev, "for-B"),
		toDeviceJSON(patientUser, "STRANGERDEV", "for-unserved-device"),
		toDeviceJSON(nurse, "NURSEPHONE", "for-staff"),
		toDeviceJSON("@sms_9a0b7c:clinic.example", "BRIDGEDEV", "for-ghost"),
	}, ",")+`]}`)
	// Stable field, and a "*" recipient, which goes to every served device of that user.
	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, "*", "for-all-of-A")+`]}`)

	a, _ := h.next(t, devA, "")
	a2, _ := h.next(t, devA2, "")
	b, _ := h.next(t, devB, "")
	assert.Equal(t, []string{"for-A", "for-all-of-A"}, bodies(a))
	assert.Equal(t, []string{"for-A2", "for-all-of-A"}, bodies(a2))
	assert.Equal(t, []string{"for-B"}, bodies(b), "same device ID, other patient: only its own")

	ev := a.ToDevice.Events[0]
	assert.Equal(t, nurse, ev.Sender)
	assert.Equal(t, "m.room.encrypted", ev.Type)
	raw, err := json.Marshal(ev)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "to_user_id", "the page gets the event as in /sync")
	assert.NotContains(t, string(raw), "to_device_id")

	_, _, err = h.in.Next(context.Background(), Device{patientUser, "STRANGERDEV"}, "")
	assert.ErrorIs(t, err, ErrUnknownDevice)
	h.in.AddDevice(Device{patientUser, "STRANGERDEV"})
	s, _ := h.next(t, Device{patientUser, "STRANGERDEV"}, "")
	assert.Empty(t, s.ToDevice.Events, "what came before a device was added is not filed")
}

func TestDeviceListChangesAreNarrowedToTheSecureRoom(t *testing.T) {
	h := newInboxHarness(t, 0)
	h.file(t, `{"events":[],"org.matrix.msc3202.device_lists":{"changed":["`+
		string(nurse)+`","`+string(outsider)+`","`+string(patientUser)+`","`+string(clinician)+`"],"left":["`+string(smsGhost)+`"]}}`)
	a, cur := h.next(t, devA, "")
	assert.Equal(t, []id.UserID{nurse, patientUser}, a.DeviceLists.Changed, "the room's members and the patient, nobody else")
	assert.Empty(t, a.DeviceLists.Left, "a user the page never shared a room with is not named")
	a2, _ := h.next(t, devA2, "")
	assert.Equal(t, a.DeviceLists, a2.DeviceLists, "every device of the patient gets it")
	b, _ := h.next(t, devB, "")
	assert.Equal(t, []id.UserID{clinician}, b.DeviceLists.Changed)

	// The nurse leaves the secure room, then shares no room with the appservice's users.
	h.mu.Lock()
	h.members[patientUser] = []id.UserID{patientUser}
	h.mu.Unlock()
	h.file(t, `{"events":[],"device_lists":{"changed":[],"left":["`+string(nurse)+`"]}}`)
	a, _ = h.next(t, devA, cur)
	assert.Equal(t, []id.UserID{nurse}, a.DeviceLists.Left, "a user the page may track is told as left")
	assert.Empty(t, a.DeviceLists.Changed)
	b, _ = h.next(t, devB, "")
	assert.Empty(t, b.DeviceLists.Left, "the other patient never shared a room with the nurse")

	// In one batch, a later change wins over an earlier one.
	h.mu.Lock()
	h.members[patientUser] = []id.UserID{patientUser, nurse}
	h.mu.Unlock()
	h.file(t, `{"events":[],"device_lists":{"changed":["`+string(nurse)+`"]}}`)
	a, _ = h.next(t, devA, cur)
	assert.Equal(t, []id.UserID{nurse}, a.DeviceLists.Changed)
	assert.Empty(t, a.DeviceLists.Left)
}

func TestKeyCountsAreTheLatestPerDevice(t *testing.T) {
	h := newInboxHarness(t, 0)
	a, cur := h.next(t, devA, "")
	assert.Empty(t, a.OTKCounts)
	assert.Nil(t, a.FallbackKeys, "unknown until the homeserver says")
	raw, err := json.Marshal(a)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "device_unused_fallback_key_types", "absent, not an empty list (which means used up)")

	h.file(t, `{"events":[],"org.matrix.msc3202.device_one_time_keys_count":{"`+string(patientUser)+`":{"`+string(patientDev)+`":{"signed_curve25519":7},"`+string(patientDev2)+`":{"signed_curve25519":50}}},`+
		`"org.matrix.msc3202.device_unused_fallback_key_types":{"`+string(patientUser)+`":{"`+string(patientDev)+`":[]}}}`)
	a, cur = h.next(t, devA, cur)
	assert.Equal(t, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 7}, a.OTKCounts)
	require.NotNil(t, a.FallbackKeys)
	assert.Empty(t, *a.FallbackKeys, "the fallback key was used: the page uploads a new one")
	raw, err = json.Marshal(a)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"device_unused_fallback_key_types":[]`)
	a2, _ := h.next(t, devA2, "")
	assert.Equal(t, 50, a2.OTKCounts[id.KeyAlgorithmSignedCurve25519], "each device its own count")
	assert.Nil(t, a2.FallbackKeys)
	b, _ := h.next(t, devB, "")
	assert.Empty(t, b.OTKCounts, "the other patient's device with the same ID gets nothing")

	// The same counts again change nothing and wake nobody; a new count is a new batch.
	h.file(t, `{"events":[],"device_one_time_keys_count":{"`+string(patientUser)+`":{"`+string(patientDev)+`":{"signed_curve25519":7}}}}`)
	again, again2 := h.next(t, devA, cur)
	assert.Equal(t, cur, again2, "unchanged counts are not news")
	assert.Equal(t, 7, again.OTKCounts[id.KeyAlgorithmSignedCurve25519], "but every batch carries them, as /sync does")
	h.file(t, `{"events":[],"device_one_time_keys_count":{"`+string(patientUser)+`":{"`+string(patientDev)+`":{"signed_curve25519":0}}},`+
		`"device_unused_fallback_key_types":{"`+string(patientUser)+`":{"`+string(patientDev)+`":["signed_curve25519"]}}}`)
	a, next := h.next(t, devA, cur)
	assert.NotEqual(t, cur, next)
	assert.Equal(t, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 0}, a.OTKCounts, "zero is said, so the page uploads more")
	assert.Equal(t, []id.KeyAlgorithm{id.KeyAlgorithmSignedCurve25519}, *a.FallbackKeys)
}

func TestCursorAcknowledgesWhatThePageTook(t *testing.T) {
	h := newInboxHarness(t, 0)
	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "one")+`,`+toDeviceJSON(patientUser, patientDev, "two")+`]}`)
	a, c1 := h.next(t, devA, "")
	assert.Equal(t, []string{"one", "two"}, bodies(a))
	again, c1b := h.next(t, devA, "")
	assert.Equal(t, []string{"one", "two"}, bodies(again), "not acknowledged yet: a reloaded page gets them again")
	assert.Equal(t, c1, c1b)

	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "three")+`]}`)
	a, c2 := h.next(t, devA, c1)
	assert.Equal(t, []string{"three"}, bodies(a), "polling with the cursor acknowledges one and two")
	assert.False(t, a.Missed)
	empty, c2b := h.next(t, devA, c2)
	assert.Empty(t, empty.ToDevice.Events)
	assert.Equal(t, c2, c2b, "nothing new: the same cursor")

	old, _ := h.next(t, devA, "")
	assert.True(t, old.Missed, "a cursor older than one already acknowledged may have missed events")
	assert.Empty(t, bodies(old), "what was acknowledged is forgotten")

	for _, foreign := range []string{"0a1b2c3d4e5f_1", "garbage", h.in.cursor(99)} {
		b, next := h.next(t, devA, foreign)
		assert.True(t, b.Missed, "cursor %q is not one this inbox gave", foreign)
		assert.Equal(t, c2, next)
	}
}

func TestAFullQueueDropsTheOldestAndSaysSo(t *testing.T) {
	h := newInboxHarness(t, 3)
	var evs []string
	for i := 1; i <= 5; i++ {
		evs = append(evs, toDeviceJSON(patientUser, patientDev, fmt.Sprintf("m%d", i)))
	}
	h.file(t, `{"events":[],"to_device":[`+strings.Join(evs, ",")+`]}`)
	a, cur := h.next(t, devA, "")
	assert.Equal(t, []string{"m3", "m4", "m5"}, bodies(a), "bounded at three, oldest dropped")
	assert.True(t, a.Missed)
	a2, _ := h.next(t, devA2, "")
	assert.False(t, a2.Missed, "another device's queue is its own")

	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "m6")+`]}`)
	a, _ = h.next(t, devA, cur)
	assert.Equal(t, []string{"m6"}, bodies(a))
	assert.False(t, a.Missed, "once past the loss, batches are whole again")
}

func TestLongPollWakesWhenSomethingIsFiled(t *testing.T) {
	h := newInboxHarness(t, 0)
	_, cur := h.next(t, devA, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		b    *Batch
		next string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		b, next, err := h.in.Next(ctx, devA, cur)
		got <- result{b, next, err}
	}()
	require.Eventually(t, func() bool { return h.in.waiters(devA) == 1 }, 10*time.Second, time.Millisecond, "the poll waits")

	// Filing for another device does not wake it.
	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev2, "for-A2")+`]}`)
	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "for-A")+`]}`)
	select {
	case r := <-got:
		require.NoError(t, r.err)
		assert.Equal(t, []string{"for-A"}, bodies(r.b), "woken by its own event, and only that")
		assert.NotEqual(t, cur, r.next)
	case <-ctx.Done():
		t.Fatal("the long poll was not woken")
	}
	assert.Equal(t, 0, h.in.waiters(devA))

	// With nothing filed the poll ends at its timeout with an empty batch and the same cursor.
	_, cur = h.next(t, devA, "")
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	b, next, err := h.in.Next(short, devA, cur)
	require.NoError(t, err)
	assert.Empty(t, b.ToDevice.Events)
	assert.Equal(t, cur, next)
}

func TestARetriedTransactionIsFiledOnce(t *testing.T) {
	h := newInboxHarness(t, 0)
	var txn appservice.Transaction
	require.NoError(t, json.Unmarshal([]byte(`{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "once")+`]}`), &txn))
	require.NoError(t, h.in.File(context.Background(), "retried", FromTransaction(&txn)))
	require.NoError(t, h.in.File(context.Background(), "retried", FromTransaction(&txn)))
	a, _ := h.next(t, devA, "")
	assert.Equal(t, []string{"once"}, bodies(a))
}

func TestUnreadableMembersFileNothingSoTheHomeserverRetries(t *testing.T) {
	h := newInboxHarness(t, 0)
	h.memErr = errors.New("state store unavailable")
	body := `{"events":[],"to_device":[` + toDeviceJSON(patientUser, patientDev, "keep") + `],"device_lists":{"changed":["` + string(nurse) + `"]}}`
	var logs bytes.Buffer
	var nextCalls int
	tee := TransactionTee(h.in, testHSToken)(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		nextCalls++
		rw.WriteHeader(http.StatusOK)
	}))
	put := func() int {
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/51", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testHSToken)
		req = req.WithContext(zerolog.New(&logs).Level(zerolog.TraceLevel).WithContext(req.Context()))
		rec := httptest.NewRecorder()
		tee.ServeHTTP(rec, req)
		return rec.Code
	}
	assert.Equal(t, http.StatusServiceUnavailable, put())
	assert.Equal(t, 0, nextCalls, "the bridge does not see it either: the homeserver retries it whole")
	a, _ := h.next(t, devA, "")
	assert.Empty(t, a.ToDevice.Events, "all or nothing")

	h.memErr = nil
	assert.Equal(t, http.StatusOK, put())
	assert.Equal(t, 1, nextCalls)
	a, _ = h.next(t, devA, "")
	assert.Equal(t, []string{"keep"}, bodies(a))
	assert.Equal(t, []id.UserID{nurse}, a.DeviceLists.Changed)
	assert.NotContains(t, logs.String(), "keep", "the log holds no content")
}

func TestTransactionTeeFilesOnlyTheHomeserversTransactions(t *testing.T) {
	h := newInboxHarness(t, 0)
	var seen [][]byte
	tee := TransactionTee(h.in, testHSToken)(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, b)
		rw.WriteHeader(http.StatusOK)
	}))
	put := func(path, token, body string) {
		req := httptest.NewRequest(http.MethodPut, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		tee.ServeHTTP(httptest.NewRecorder(), req)
	}
	forged := `{"events":[],"to_device":[` + toDeviceJSON(patientUser, patientDev, "forged") + `]}`
	put("/_matrix/app/v1/transactions/1", "", forged)
	put("/_matrix/app/v1/transactions/2", "not-the-hs-token", forged)
	put("/_matrix/app/v1/other/3", testHSToken, forged)
	real := `{"events":[],"de.sorunome.msc2409.to_device":[` + toDeviceJSON(patientUser, patientDev, "real") + `]}`
	put("/_matrix/app/v1/transactions/4", testHSToken, real)

	a, _ := h.next(t, devA, "")
	assert.Equal(t, []string{"real"}, bodies(a), "only a transaction with the hs_token is filed")
	require.Len(t, seen, 4, "every request still reaches the appservice")
	assert.Equal(t, real, string(seen[3]), "with its body intact")
}

// eventsHarness serves EventsHandler for a patient with the session's device set, as the
// secure chat would.
func eventsGet(t *testing.T, in *Inbox, patient id.UserID, sessionDevice id.DeviceID, method, query string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, "/e2ee/events"+query, nil)
	req = req.WithContext(WithDevice(req.Context(), sessionDevice))
	rec := httptest.NewRecorder()
	in.EventsHandler(patient).ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestEventsEndpointServesOnlyTheSessionsDevice(t *testing.T) {
	h := newInboxHarness(t, 0)
	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "for-A")+`,`+
		toDeviceJSON(patientUser, patientDev2, "for-A2")+`,`+toDeviceJSON(otherPatient, patientDev, "for-B")+`],`+
		`"device_lists":{"changed":["`+string(nurse)+`"]},`+
		`"device_one_time_keys_count":{"`+string(patientUser)+`":{"`+string(patientDev)+`":{"signed_curve25519":3}}}}`)

	status, body := eventsGet(t, h.in, patientUser, patientDev, http.MethodGet, "?timeout=0")
	require.Equal(t, http.StatusOK, status, "%s", body)
	var page map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &page))
	assert.ElementsMatch(t, []string{"next_batch", "to_device", "device_lists", "device_one_time_keys_count", "room_events"}, keys(page),
		"the /sync names receiveSyncChanges is fed from, and the secure room's timeline")
	var b Batch
	require.NoError(t, json.Unmarshal(body, &b))
	assert.Equal(t, []string{"for-A"}, bodies(&b))
	assert.Equal(t, []id.UserID{nurse}, b.DeviceLists.Changed)
	assert.Equal(t, 3, b.OTKCounts[id.KeyAlgorithmSignedCurve25519])
	assert.NotContains(t, string(body), "for-A2")
	assert.NotContains(t, string(body), "for-B")

	status, body = eventsGet(t, h.in, patientUser, patientDev2, http.MethodGet, "?timeout=0")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(body, &b))
	assert.Equal(t, []string{"for-A2"}, bodies(&b))

	// A session whose device is not the patient's (another patient's device ID, or none) reads
	// nothing, even with a cursor.
	for _, dev := range []id.DeviceID{"", "STRANGERDEV", "NURSEPHONE"} {
		status, body = eventsGet(t, h.in, patientUser, dev, http.MethodGet, "?timeout=0&since="+b.NextBatch)
		assert.Equal(t, http.StatusForbidden, status, "device %q", dev)
		assert.NotContains(t, string(body), "for-")
	}
	status, _ = eventsGet(t, h.in, otherPatient, patientDev2, http.MethodGet, "?timeout=0")
	assert.Equal(t, http.StatusForbidden, status, "a device of one patient is not another's")
	status, body = eventsGet(t, h.in, otherPatient, patientDev, http.MethodGet, "?timeout=0")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(body, &b))
	assert.Equal(t, []string{"for-B"}, bodies(&b), "same device ID under the other patient: its own queue")

	status, _ = eventsGet(t, h.in, patientUser, patientDev, http.MethodPost, "")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	status, _ = eventsGet(t, h.in, patientUser, patientDev, http.MethodGet, "?timeout=soon")
	assert.Equal(t, http.StatusBadRequest, status)
}

func TestEventsEndpointLongPolls(t *testing.T) {
	h := newInboxHarness(t, 0)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h.in.EventsHandler(patientUser).ServeHTTP(rw, r.WithContext(WithDevice(r.Context(), patientDev)))
	}))
	defer srv.Close()
	type result struct {
		status int
		b      Batch
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/e2ee/events?timeout=20000")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var b Batch
		err = json.NewDecoder(resp.Body).Decode(&b)
		got <- result{status: resp.StatusCode, b: b, err: err}
	}()
	require.Eventually(t, func() bool { return h.in.waiters(devA) == 1 }, 10*time.Second, time.Millisecond)
	h.file(t, `{"events":[],"to_device":[`+toDeviceJSON(patientUser, patientDev, "woken")+`]}`)
	select {
	case r := <-got:
		require.NoError(t, r.err)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, []string{"woken"}, bodies(&r.b))
	case <-time.After(15 * time.Second):
		t.Fatal("the poll was not answered when its event was filed")
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
