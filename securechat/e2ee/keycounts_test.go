//go:build e2eepatient

package e2ee

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

// otkTxn is a transaction carrying only a one-time key count for devA, and, with a
// device list change, a read of the members (which the tests below use to hold a filing).
func otkTxn(count string, changed bool) string {
	lists := ""
	if changed {
		lists = `"device_lists":{"changed":["` + string(nurse) + `"]},`
	}
	return `{"events":[],` + lists + `"device_one_time_keys_count":{"` + string(patientUser) + `":{"` + string(patientDev) + `":{"signed_curve25519":` + count + `}}}}`
}

// The step-3 finding: a transaction built before the page's keys/upload carried the pre-upload
// count (0) to the page's first poll after it, and the page uploaded a second set of keys. The
// upload's answer is the newest count; counts of transactions that began filing before it are
// ignored; later transactions' counts are taken again.
func TestAKeysUploadAnswerWinsOverStaleTransactionCounts(t *testing.T) {
	h := newInboxHarness(t, 0)
	// Before any upload: the homeserver's 0.
	h.file(t, otkTxn("0", false))
	a, cur := h.next(t, devA, "")
	assert.Equal(t, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 0}, a.OTKCounts)

	// The page uploads 50; the proxy hands the answer's counts on before the page sees it.
	h.in.KeysUploaded(devA, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 50})
	a, next := h.next(t, devA, cur)
	assert.NotEqual(t, cur, next, "new counts are news: the long poll wakes")
	assert.Equal(t, 50, a.OTKCounts[id.KeyAlgorithmSignedCurve25519])
	cur = next
	a2, _ := h.next(t, devA2, "")
	assert.Empty(t, a2.OTKCounts, "the other device's counts are its own")

	// A transaction that began filing before the upload was answered (held here in its read
	// of the members) carries the homeserver's older 0: ignored.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.mu.Lock()
	hold := true
	h.mu.Unlock()
	in, err := NewInbox(InboxConfig{Devices: []Device{devA}, Members: func(ctx context.Context, _ id.UserID) ([]id.UserID, error) {
		h.mu.Lock()
		held := hold
		h.mu.Unlock()
		if held {
			once.Do(func() { close(entered) })
			<-release
		}
		return []id.UserID{patientUser, nurse}, nil
	}})
	require.NoError(t, err)
	h.in = in
	h.file(t, otkTxn("0", false))
	filed := make(chan error, 1)
	go func() { filed <- h.fileErr(otkTxn("0", true)) }()
	<-entered
	h.in.KeysUploaded(devA, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 50})
	close(release)
	require.NoError(t, <-filed)
	h.mu.Lock()
	hold = false
	h.mu.Unlock()
	a, cur = h.next(t, devA, "")
	assert.Equal(t, 50, a.OTKCounts[id.KeyAlgorithmSignedCurve25519], "the in-flight transaction's 0 is older than the upload")
	assert.Equal(t, []id.UserID{nurse}, a.DeviceLists.Changed, "the rest of that transaction is filed")

	// A transaction begun after the upload is newer: a staff device claimed one key.
	h.file(t, otkTxn("49", false))
	a, _ = h.next(t, devA, cur)
	assert.Equal(t, 49, a.OTKCounts[id.KeyAlgorithmSignedCurve25519])

	// An answer with no signed_curve25519 count still says 0; an unserved device is ignored.
	h.in.KeysUploaded(devA, nil)
	a, _ = h.next(t, devA, "")
	assert.Equal(t, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 0}, a.OTKCounts)
	h.in.KeysUploaded(devB, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 5})
	assert.False(t, h.in.Serves(devB))
}

// The proxy hands each keys/upload answer's counts to Config.KeysUploaded for the session's
// device before the page sees the answer, and relays the answer unchanged; a refused upload
// hands nothing on.
func TestProxyHandsTheKeysUploadCountsOn(t *testing.T) {
	status := http.StatusOK
	answer := `{"one_time_key_counts":{"signed_curve25519":50}}`
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		_, _ = rw.Write([]byte(answer))
	}))
	t.Cleanup(hs.Close)
	type got struct {
		device id.DeviceID
		counts map[id.KeyAlgorithm]int
	}
	var calls []got
	p, err := New(Config{
		HomeserverURL: hs.URL, ASToken: testASToken, UserID: patientUser, DeviceIDs: []id.DeviceID{patientDev, patientDev2},
		RoomID: secureRoom, Members: func(context.Context) ([]id.UserID, error) { return []id.UserID{patientUser}, nil },
		KeysUploaded: func(_ context.Context, d id.DeviceID, c map[id.KeyAlgorithm]int) { calls = append(calls, got{d, c}) },
	})
	require.NoError(t, err)
	upload := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, v3+"/keys/upload", strings.NewReader(`{"one_time_keys":{}}`))
		rw := httptest.NewRecorder()
		p.ServeHTTP(rw, r.WithContext(WithDevice(r.Context(), patientDev2)))
		return rw
	}
	rw := upload()
	assert.Equal(t, http.StatusOK, rw.Code)
	assert.Equal(t, answer, rw.Body.String(), "the page gets the homeserver's answer as it was")
	assert.Equal(t, []got{{patientDev2, map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: 50}}}, calls)

	status, answer = http.StatusBadRequest, `{"errcode":"M_BAD_JSON","error":"no"}`
	rw = upload()
	assert.Equal(t, http.StatusBadRequest, rw.Code)
	assert.Equal(t, answer, rw.Body.String())
	assert.Len(t, calls, 1, "a refused upload hands nothing on")
}
