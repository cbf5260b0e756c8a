package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

const (
	accountSID  = "AC0123456789abcdef0123456789abcdef"
	authToken   = "fedcba9876543210fedcba9876543210"
	clinicPhone = "+15550001111"
	patient     = "+15551234567"
)

// TestSMSRoundTrip is the foundation's acceptance test, once per database: a patient
// texts the clinic, a nurse using an independent E2EE client (matrix-nio) reads the
// decrypted text and replies, and the reply reaches Twilio as an SMS.
func TestSMSRoundTrip(t *testing.T) { eachHomeserver(t, runSMSRoundTrip) }

// env is one running system: fake Twilio, a homeserver (Dendrite, or Synapse for a kind
// such as "synapse/sqlite") with an admin and a nurse, the bridge.
type env struct {
	db      testenv.DBSpec
	fake    *testenv.FakeTwilio
	hs      testenv.Homeserver
	br      *testenv.Bridge
	adminID string
	nurseID string
}

func newEnv(t *testing.T, kind string) *env {
	return newEnvWith(t, kind, nil)
}

// newEnvWith is newEnv with changes to the bridge's config (a YAML map).
func newEnvWith(t *testing.T, kind string, edit func(cfg map[string]any)) *env {
	return newEnvClock(t, kind, edit, false)
}

// newEnvClock is newEnvWith, with a bridge whose clock the test moves (SetClock: a
// testclock build) when movableClock.
func newEnvClock(t *testing.T, kind string, edit func(cfg map[string]any), movableClock bool) *env {
	_, dbKind := testenv.SplitKind(kind)
	e := &env{db: testenv.NewDatabase(t, dbKind), fake: testenv.NewFakeTwilio()}
	t.Cleanup(e.fake.Close)
	e.fake.AddAccount(accountSID, authToken)
	e.fake.AddNumber(accountSID, clinicPhone)
	e.hs = testenv.NewHomeserver(t, kind)
	e.nurseID = "@nurse:" + e.hs.ServerName()
	e.br = testenv.NewBridge(t, testenv.BridgeOptions{
		Homeserver: e.hs, DB: e.db, TwilioAPIURL: e.fake.URL(), StaffInvites: []string{e.nurseID}, Edit: edit,
		MovableClock: movableClock,
	})
	e.hs.Start(e.br.RegistrationPath)
	e.adminID = e.hs.CreateUser(t, "admin", "admin-password-1")
	e.hs.CreateUser(t, "nurse", "nurse-password-1")
	e.br.Start()
	return e
}

func runSMSRoundTrip(t *testing.T, kind string) {
	if testing.Short() {
		t.Skip("acceptance test: runs Dendrite, the bridge and matrix-nio")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := newEnv(t, kind)
	fake, hs, br, db, adminID, nurseID := e.fake, e.hs, e.br, e.db, e.adminID, e.nurseID
	nurse := testenv.StartStaffAgent(t, hs.URL(), nurseID, "nurse-password-1")

	// IT links the clinic number as a person would write it; the bridge sets its webhook.
	loginID, err := br.LinkNumber(ctx, adminID, accountSID, authToken, "(555) 000-1111")
	require.NoError(t, err)
	assert.Equal(t, "15550001111", loginID)

	// A patient texts; the bridge answers with empty TwiML once it has stored the text.
	first, err := fake.SendInbound(ctx, patient, clinicPhone, "Hi, this is Maria. My fever is back since last night.")
	require.NoError(t, err)
	assert.Equal(t, sms.WithConnectionOverrides(br.InboundURL(loginID)), first.URL, "linking pointed the number's SmsUrl at the bridge")
	require.Equal(t, http.StatusOK, first.StatusCode, first.Body)
	assert.Contains(t, first.Body, "<Response></Response>")

	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err, "the nurse is invited to the new conversation")
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && m.Body == "Hi, this is Maria. My fever is back since last night."
	})
	require.NoError(t, err)
	assert.True(t, msg.Encrypted, "the patient's text arrives end-to-end encrypted")
	assert.Equal(t, e.patientGhost(t, ctx, patient), msg.Sender, "sent by the patient's ghost")

	// The nurse replies; relay sends it from the clinic number, signed with her name.
	_, _, err = nurse.Send(ctx, roomID, "Please come in at 3pm today.")
	require.NoError(t, err)
	sms, err := fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	assert.Equal(t, clinicPhone, sms.From)
	assert.Equal(t, "nurse: Please come in at 3pm today.", sms.Body)

	// Twilio retries the first webhook: it is answered and not delivered again. A later
	// text proves the queue got past the retry (delivery is in order).
	again, err := fake.ResendInbound(ctx, first)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, again.StatusCode)
	_, err = fake.SendInbound(ctx, patient, clinicPhone, "Thank you, see you at 3.")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Thank you, see you at 3." })
	require.NoError(t, err)
	assert.Equal(t, 1, countBodies(nurse, first.Params.Get("Body")), "a repeated MessageSid is delivered once")

	// A forged webhook from another patient: 403, no receipt, no conversation, no portal.
	forged := url.Values{}
	for k, v := range first.Params {
		forged[k] = slices.Clone(v)
	}
	forged.Set("From", "+15557654321")
	forged.Set("MessageSid", testenv.NewTwilioSID("SM"))
	resp, err := fake.PostSigned(ctx, br.InboundURL(loginID), forged, "00000000000000000000000000000000")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, err = http.PostForm(br.InboundURL(loginID), forged) // no signature at all
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assertNoTrace(t, db, forged.Get("MessageSid"), "15557654321")

	// Round trips for the closing note: webhook POST → decrypted at nio, nio send → fake.
	var inbound, outbound []time.Duration
	for i := range 20 {
		body := fmt.Sprintf("Patient text %d about my prescription", i)
		postedAt := time.Now()
		res, err := fake.SendInbound(ctx, patient, clinicPhone, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		got, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == body })
		require.NoError(t, err)
		require.True(t, got.Encrypted)
		inbound = append(inbound, got.ReceivedAt().Sub(postedAt))

		reply := fmt.Sprintf("Staff reply %d", i)
		_, sentAt, err := nurse.Send(ctx, roomID, reply)
		require.NoError(t, err)
		out, err := fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.Body == "nurse: "+reply })
		require.NoError(t, err)
		outbound = append(outbound, out.ReceivedAt.Sub(sentAt))
	}
	t.Logf("[%s] webhook POST → decrypted at nio: median %v, max %v (n=20)", kind, median(inbound), slices.Max(inbound))
	t.Logf("[%s] nio send → fake Twilio receipt: median %v, max %v (n=20)", kind, median(outbound), slices.Max(outbound))

	// No message body ever reaches the bridge's log.
	log := br.Log()
	for _, body := range []string{"My fever is back", "Please come in at 3pm", "about my prescription", "Staff reply"} {
		assert.NotContains(t, log, body, "the bridge log must not contain message bodies")
	}
}

// linkedEnv starts a system (newEnvWith) with the clinic number linked and a nurse
// (matrix-nio) logged in, bounded by one context; it skips with -short and needs nio.
func linkedEnv(t *testing.T, kind string, edit func(cfg map[string]any)) (*env, *testenv.StaffAgent, string, context.Context) {
	return linkedEnvClock(t, kind, edit, false)
}

// linkedClockEnv is linkedEnv with a bridge whose clock the test moves (SetClock).
func linkedClockEnv(t *testing.T, kind string, edit func(cfg map[string]any)) (*env, *testenv.StaffAgent, string, context.Context) {
	return linkedEnvClock(t, kind, edit, true)
}

func linkedEnvClock(t *testing.T, kind string, edit func(cfg map[string]any), movableClock bool) (*env, *testenv.StaffAgent, string, context.Context) {
	if testing.Short() {
		t.Skip("starts Dendrite, the bridge and matrix-nio")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	setup, cancelSetup := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelSetup()
	e := newEnvClock(t, kind, edit, movableClock)
	loginID, err := e.br.LinkNumber(setup, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")
	// The test's own three minutes start once everything is up: in CI, with other
	// packages' tests beside it, setting up once took two of them (TestNoPHIInLogs).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return e, nurse, loginID, ctx
}

// eachDB runs an integration test once per supported database, on Dendrite.
func eachDB(t *testing.T, run func(t *testing.T, kind string)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) { run(t, kind) })
	}
}

// eachHomeserver runs an end-to-end test on the homeservers CAREBRIDGE_TEST_HOMESERVER
// selects (both by default): on Dendrite once per database, as eachDB (subtests sqlite
// and postgres), and on Synapse as eachSynapseDB (subtest synapse/sqlite, kind
// "synapse/sqlite", by default): the queries are the same whatever the homeserver, and
// CI's time goes further so.
func eachHomeserver(t *testing.T, run func(t *testing.T, kind string)) {
	for _, hs := range testenv.HomeserverKinds(t) {
		switch hs {
		case testenv.HomeserverDendrite:
			eachDB(t, run)
		case testenv.HomeserverSynapse:
			t.Run(hs, func(t *testing.T) { eachSynapseDB(t, run) })
		}
	}
}

// eachHomeserverOnce is eachHomeserver with Dendrite on SQLite only (subtest and kind
// "dendrite"), for tests of what the homeserver does rather than the database.
func eachHomeserverOnce(t *testing.T, run func(t *testing.T, kind string)) {
	for _, hs := range testenv.HomeserverKinds(t) {
		switch hs {
		case testenv.HomeserverDendrite:
			t.Run(hs, func(t *testing.T) { run(t, hs) })
		case testenv.HomeserverSynapse:
			t.Run(hs, func(t *testing.T) { eachSynapseDB(t, run) })
		}
	}
}

// eachSynapseDB runs a test on Synapse once per database CAREBRIDGE_TEST_SYNAPSE_DB
// selects (SQLite by default): subtests sqlite and postgres, kinds "synapse/sqlite" and
// "synapse/postgres", Synapse and the bridge on the same kind of database.
func eachSynapseDB(t *testing.T, run func(t *testing.T, kind string)) {
	for _, db := range testenv.SynapseDatabaseKinds(t) {
		t.Run(db, func(t *testing.T) { run(t, testenv.HomeserverSynapse+"/"+db) })
	}
}

func countBodies(a *testenv.StaffAgent, body string) int {
	n := 0
	for _, m := range a.Messages() {
		if m.Body == body {
			n++
		}
	}
	return n
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// assertNoTrace checks that a rejected webhook left nothing in the database.
func assertNoTrace(t *testing.T, spec testenv.DBSpec, messageSID, portalID string) {
	t.Helper()
	driver, placeholder := "postgres", "$1"
	if spec.Type != "postgres" {
		driver, placeholder = "sqlite3", "?1"
	}
	db, err := sql.Open(driver, spec.URI)
	require.NoError(t, err)
	defer db.Close()
	for query, arg := range map[string]string{
		"SELECT COUNT(*) FROM inbound_receipt WHERE message_sid=$1": messageSID,
		"SELECT COUNT(*) FROM conversation WHERE portal_id=$1":      portalID,
		"SELECT COUNT(*) FROM portal WHERE id=$1":                   portalID,
	} {
		var n int
		require.NoError(t, db.QueryRow(strings.Replace(query, "$1", placeholder, 1), arg).Scan(&n), query)
		assert.Zero(t, n, query)
	}
}
