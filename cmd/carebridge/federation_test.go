package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/internal/dendrite"
	"github.com/carebridge/carebridge/internal/testenv"
)

// TestRoomPolicy runs one homeserver with an allow-list and masked names: the room's
// server ACL allows the own server and the list, nothing in clear names the patient or
// their full number, the pinned encrypted notice does, a referral to a server not on the
// list is refused and audited, and a changed list reaches the existing room at restart.
// On Dendrite and on Synapse (eachHomeserver).
func TestRoomPolicy(t *testing.T) { eachHomeserver(t, runRoomPolicy) }

func runRoomPolicy(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		cfg["network"].(map[string]any)["federation"] = map[string]any{"allowed_servers": []any{"hospital.example"}}
		cfg["network"].(map[string]any)["privacy"] = map[string]any{"mask_room_names": true}
	})
	own := e.hs.ServerName()
	rs := roomState{t: t, hsURL: e.hs.URL(), token: matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1")}

	roomID := patientTexts(ctx, t, e, nurse, "Hello, it's about my lab results")
	acl := rs.find(roomID, "m.room.server_acl", "")
	require.NotNil(t, acl, "the room has a server ACL")
	assert.Equal(t, []any{own, "hospital.example"}, acl["allow"])
	assert.Equal(t, false, acl["allow_ip_literals"])

	// The patient's number in full is only in the pinned, encrypted notice.
	notice, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && m.MsgType == "m.notice" && strings.HasPrefix(m.Body, "📌 Patient:")
	})
	require.NoError(t, err)
	assert.Contains(t, notice.Body, "(555) 123-4567")
	pins := rs.find(roomID, "m.room.pinned_events", "")
	require.NotNil(t, pins)
	assert.Equal(t, []any{notice.EventID}, pins["pinned"])
	assertMasked := func(what string) {
		t.Helper()
		for _, evt := range rs.get(roomID) {
			raw, _ := json.Marshal(evt.Content)
			assert.NotContains(t, string(raw), "5551234567", "%s: %s %q holds the full number", what, evt.Type, evt.StateKey)
			assert.NotContains(t, string(raw), "123-4567", "%s: %s %q holds the full number", what, evt.Type, evt.StateKey)
			assert.NotContains(t, string(raw), "Jane", "%s: %s %q holds the patient's name", what, evt.Type, evt.StateKey)
		}
		assert.Equal(t, "Patient …4567", rs.find(roomID, "m.room.name", "")["name"], what)
	}
	assertMasked("new room")

	// A name goes into a new pinned notice, not into the room's name or the display name.
	_, _, err = nurse.Send(ctx, roomID, "!sms name Jane Doe")
	require.NoError(t, err)
	named, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && strings.HasPrefix(m.Body, "📌 Patient: Jane Doe, ")
	})
	require.NoError(t, err)
	rs.await(ctx, roomID, "m.room.pinned_events", "", "the named notice is pinned instead", func(c map[string]any) bool {
		return slices.Equal(c["pinned"].([]any), []any{named.EventID})
	})
	assertMasked("after !sms name")

	// A referral to a server not on the list is refused, with the reason, and audited.
	_, _, err = nurse.Send(ctx, roomID, "!sms refer @dr.evil:elsewhere.example")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && strings.Contains(m.Body, "Not invited: elsewhere.example is not on this clinic's federation allow-list (allowed servers: hospital.example)")
	})
	require.NoError(t, err)
	assert.Nil(t, rs.find(roomID, "m.room.member", "@dr.evil:elsewhere.example"), "nobody was invited")
	assert.Equal(t, 1, laterQueryInt(t, e.db, "SELECT COUNT(*) FROM audit_log WHERE event='referral refused' AND outcome='refused' AND detail='@dr.evil:elsewhere.example' AND actor='"+e.nurseID+"'"))

	// The list changes: at the next start the existing room's ACL follows, once.
	setConfig(t, e.br.ConfigPath(), []string{"network", "federation", "allowed_servers"}, []any{"clinic-partner.example", "hospital.example"})
	e.br.Stop()
	e.br.Restart()
	rs.await(ctx, roomID, "m.room.server_acl", "", "the changed allow-list reaches the room", func(c map[string]any) bool {
		return slices.Equal(c["allow"].([]any), []any{own, "clinic-partner.example", "hospital.example"})
	})
	assertMasked("after restart")
	assert.Equal(t, 1, countNotices(nurse, roomID, "📌 Patient: Jane Doe, "), "the room was masked already: no second notice")
}

// patientTexts has the patient text the clinic and returns the room where the nurse reads it.
func patientTexts(ctx context.Context, t *testing.T, e *env, nurse *testenv.StaffAgent, body string) string {
	t.Helper()
	res, err := e.fake.SendInbound(ctx, patient, clinicPhone, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == body })
	require.NoError(t, err)
	return msg.RoomID
}

func countNotices(a *testenv.StaffAgent, roomID, prefix string) int {
	n := 0
	for _, m := range a.Messages() {
		if m.RoomID == roomID && strings.HasPrefix(m.Body, prefix) {
			n++
		}
	}
	return n
}

// setConfig changes one value of the bridge's config file.
func setConfig(t *testing.T, path string, key []string, value any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	require.NoError(t, dendrite.SetYAMLPath(cfg, key, value))
	raw, err = yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, raw, 0o600))
}

// TestFederationReferral runs three homeservers that federate on loopback (self-signed
// TLS, validation off for the test): the bridge's, a hospital's on the allow-list and
// another that is not. A nurse refers a doctor of the hospital, who joins over federation
// and reads a new patient message end to end encrypted (nio); a user of the other server,
// invited from a client, is removed by the bridge; both are audited, and what the
// hospital's server holds in clear names neither the patient nor their number. On three
// Dendrites and on three Synapses.
func TestFederationReferral(t *testing.T) {
	for _, kind := range testenv.HomeserverKinds(t) {
		t.Run(kind, func(t *testing.T) { runFederationReferral(t, kind) })
	}
}

func runFederationReferral(t *testing.T, kind string) {
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	hs := testenv.NewFederatedHomeserver(t, kind, testenv.FederationOptions{Host: "127.0.0.1"})
	hospital := testenv.NewFederatedHomeserver(t, kind, testenv.FederationOptions{Host: "127.0.0.2"})
	other := testenv.NewFederatedHomeserver(t, kind, testenv.FederationOptions{Host: "127.0.0.3"})
	e := &env{db: testenv.NewDatabase(t, "sqlite"), fake: testenv.NewFakeTwilio(), hs: hs}
	t.Cleanup(e.fake.Close)
	e.fake.AddAccount(accountSID, authToken)
	e.fake.AddNumber(accountSID, clinicPhone)
	e.nurseID = "@nurse:" + hs.ServerName()
	e.br = testenv.NewBridge(t, testenv.BridgeOptions{
		Homeserver: hs, DB: e.db, TwilioAPIURL: e.fake.URL(), StaffInvites: []string{e.nurseID},
		Edit: func(cfg map[string]any) {
			cfg["network"].(map[string]any)["federation"] = map[string]any{"allowed_servers": []any{hospital.ServerName()}}
			cfg["network"].(map[string]any)["privacy"] = map[string]any{"mask_room_names": true}
			// bridgev2 answers a join of a user without a login with a failure message
			// status, a room event; arriving at the hospital's Dendrite while it processes
			// the doctor's send_join, it breaks the room there (matrix-org/dendrite#1697:
			// "cannot set latest events with no latest event references", then every later
			// event rejected), about half the time. Synapse buffers such events.
			cfg["matrix"].(map[string]any)["message_status_events"] = false
		},
	})
	hs.Start(e.br.RegistrationPath)
	testenv.StartHomeservers(t, hospital, other)
	e.adminID = hs.CreateUser(t, "admin", "admin-password-1")
	hs.CreateUser(t, "nurse", "nurse-password-1")
	doctorID := hospital.CreateUser(t, "dr.lee", "doctor-password-1")
	intruderID := other.CreateUser(t, "intruder", "intruder-password-1")
	e.br.Start()
	_, err := e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	nurse := testenv.StartStaffAgent(t, hs.URL(), e.nurseID, "nurse-password-1")
	rs := roomState{t: t, hsURL: hs.URL(), token: matrixLogin(t, hs.URL(), "nurse", "nurse-password-1")}

	roomID := patientTexts(ctx, t, e, nurse, "The rash is spreading to my arms")
	acl := rs.find(roomID, "m.room.server_acl", "")
	require.NotNil(t, acl)
	assert.Equal(t, []any{hs.Host(), hospital.Host(), hs.ServerName()}, acl["allow"], "the server name with its port too, for Synapse")
	assert.Equal(t, true, acl["allow_ip_literals"], "the loopback servers are IP literals")

	// The nurse refers the hospital's dermatologist, who joins over federation.
	_, _, err = nurse.Send(ctx, roomID, "!sms refer "+doctorID)
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && strings.Contains(m.Body, "referred this conversation to "+doctorID) &&
			strings.Contains(m.Body, "do not reach the patient")
	})
	require.NoError(t, err, "the notice says the doctor's messages stay in the room (no relay permission for the hospital)")
	doctor := testenv.StartStaffAgent(t, hospital.URL(), doctorID, "doctor-password-1")
	_, err = doctor.WaitJoined(ctx, roomID)
	require.NoError(t, err, "the referred doctor joins over federation")
	assert.Equal(t, 1, laterQueryInt(t, e.db, "SELECT COUNT(*) FROM audit_log WHERE event='referred' AND outcome='ok' AND detail='"+doctorID+"' AND actor='"+e.nurseID+"'"))

	// A new patient message reaches the doctor end to end encrypted; the earlier one does not.
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Now it itches a lot, should I take an antihistamine?")
	require.NoError(t, err)
	got, err := doctor.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && m.Body == "Now it itches a lot, should I take an antihistamine?"
	})
	require.NoError(t, err)
	assert.True(t, got.Encrypted)
	assert.Zero(t, countBodies(doctor, "The rash is spreading to my arms"), "keys of messages from before the referral are not shared")
	// The doctor advises the nurse in the room, encrypted for her devices too.
	_, _, err = doctor.Send(ctx, roomID, "Cetirizine 10 mg once a day is fine for her.")
	require.NoError(t, err)
	advice, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Cetirizine 10 mg once a day is fine for her." })
	require.NoError(t, err)
	assert.True(t, advice.Encrypted)
	assert.Equal(t, doctorID, advice.Sender)

	// A client invites a user of a server not on the list: the bridge removes them.
	inviteURL := hs.URL() + "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/invite"
	body, _ := json.Marshal(map[string]string{"user_id": intruderID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, inviteURL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+rs.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the homeserver lets the nurse invite")
	rs.await(ctx, roomID, "m.room.member", intruderID, "the bridge removes the member of a server not allowed", func(c map[string]any) bool {
		return c["membership"] == "leave"
	})
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && strings.Contains(m.Body, intruderID+" was removed from this conversation")
	})
	require.NoError(t, err)
	assert.Equal(t, 1, laterQueryInt(t, e.db, "SELECT COUNT(*) FROM audit_log WHERE event='member removed' AND outcome='refused' AND detail LIKE '"+intruderID+" invite by "+e.nurseID+"%'"))

	// What the hospital's server holds in clear names neither the patient nor their number.
	docRS := roomState{t: t, hsURL: hospital.URL(), token: matrixLogin(t, hospital.URL(), "dr.lee", "doctor-password-1")}
	for _, evt := range docRS.get(roomID) {
		if evt.Type == "m.room.member" {
			continue // the patient ghost's Matrix ID holds the number (docs/HIPAA.md)
		}
		raw, _ := json.Marshal(evt.Content)
		assert.NotContains(t, string(raw), "123-4567", "%s %q", evt.Type, evt.StateKey)
		assert.NotContains(t, string(raw), "5551234567", "%s %q", evt.Type, evt.StateKey)
	}
	assert.Equal(t, "Patient …4567", docRS.find(roomID, "m.room.name", "")["name"])

	// The clinic takes the hospital off its allow-list: at the next start the doctor, who
	// would otherwise keep receiving the room's keys, is removed, audited and told.
	e.br.Stop()
	e.br.EditConfig(func(cfg map[string]any) {
		cfg["network"].(map[string]any)["federation"] = map[string]any{"allowed_servers": []any{}}
	})
	e.br.Restart()
	rs.await(ctx, roomID, "m.room.member", doctorID, "a member of a server taken off the list is removed", func(c map[string]any) bool {
		return c["membership"] == "leave"
	})
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == roomID && strings.Contains(m.Body, doctorID+" was removed from this conversation")
	})
	require.NoError(t, err)
	assert.Equal(t, 1, laterQueryInt(t, e.db, "SELECT COUNT(*) FROM audit_log WHERE event='member removed' AND detail LIKE '"+
		doctorID+" (join): server removed from the allow-list%'"))
	assert.Equal(t, []any{hs.Host(), hs.ServerName()}, rs.find(roomID, "m.room.server_acl", "")["allow"])
}
