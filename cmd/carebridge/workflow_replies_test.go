package main

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

const emergencyReply = "Example Clinic: if this is an emergency, call 911 now. Si es una emergencia, llame al 911 ahora."

// TestWorkflowRepliesEmergencyAndTemplates: an emergency phrase gets the emergency reply
// at once, marks the conversation urgent and mentions the on-call staff; a repeat within
// 10 minutes gets no second reply. Templates: `!sms t` lists them, `!sms t NAME` texts
// one filled in (SMS mode) or keeps it for the secure chat with only an alert texted, and
// {link} there is words, not a second live link.
func TestWorkflowRepliesEmergencyAndTemplates(t *testing.T) { eachDB(t, runWorkflowRepliesEmergency) }

func runWorkflowRepliesEmergency(t *testing.T, kind string) {
	var onCall string
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		domain := cfg["homeserver"].(map[string]any)["domain"].(string)
		onCall = "@oncall:" + domain
		network := cfg["network"].(map[string]any)
		network["on_call"] = []any{onCall}
		network["templates"] = map[string]any{
			"confirm": "Hi {patient_name}, your appointment at {clinic_name} is confirmed.",
			"results": "{patient_name}, your results are ready. Questions? Reply here.",
			"report":  "Your report is ready: {link}",
		}
	})
	r := newRepliesHelper(t, ctx, e, nurse)

	r.inbound("Hi, a question about my refill")
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	assert.Zero(t, r.repliesContaining("call 911"), "an ordinary text gets no emergency reply")

	// The patient writes an emergency phrase (a curly apostrophe, other case).
	r.inbound("I CAN’T BREATHE properly since this morning")
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && m.Body == emergencyReply })
	require.NoError(t, err, "the emergency reply is texted at once")
	n := r.notice("Possible emergency")
	assert.Contains(t, n.Body, onCall, "the on-call staff are mentioned")
	assert.Contains(t, n.Body, "marked urgent")
	assert.True(t, r.urgent(), "the conversation is urgent")

	// Repeated within 10 minutes: still urgent, no second reply.
	r.inbound("chest pain too")
	r.inbound("please call me") // delivered after the rules ran for the text before
	assert.Equal(t, 1, r.repliesContaining("call 911"), "one emergency reply per 10 minutes")
	assert.True(t, r.urgent())
	assert.NotContains(t, e.br.Log(), "BREATHE", "the patient's text is not logged")

	// Templates in SMS mode.
	r.command(roomID, "!sms t")
	r.notice("`confirm`: Hi {patient_name}, your appointment at {clinic_name} is confirmed.")
	r.notice("send one with `!sms t NAME`") // the prefix, not a literal $cmdprefix
	r.command(roomID, "!sms t nope")
	unknown := r.notice(`There is no template called "nope"`)
	assert.Contains(t, unknown.Body, "send one with `!sms t NAME`")
	assert.NotContains(t, unknown.Body, "$cmdprefix")
	r.command(roomID, "!sms t confirm")
	sent, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && strings.Contains(m.Body, "is confirmed") })
	require.NoError(t, err)
	assert.Equal(t, "Hi, your appointment at Example Clinic is confirmed.", sent.Body, "no name yet: no gap")
	r.notice("Sent template confirm by SMS: Hi, your appointment")
	r.command(roomID, "!sms name Maria Lopez")
	r.notice("now shown as Maria Lopez")
	r.command(roomID, "!sms t confirm")
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && m.Body == "Hi Maria Lopez, your appointment at Example Clinic is confirmed."
	})
	require.NoError(t, err, "placeholders filled")

	// Secure mode: the template goes to the secure chat; only the alert is texted.
	r.command(roomID, "!sms secure")
	r.notice("Secure mode")
	before := len(e.fake.Messages())
	r.command(roomID, "!sms t results")
	r.notice("Sent template results to the secure chat: Maria Lopez, your results are ready.")
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "you have a new secure message")
	})
	require.NoError(t, err, "the patient is alerted")
	for _, m := range e.fake.Messages()[before:] {
		assert.NotContains(t, m.Body, "results", "a secure template is never texted")
	}
	var stored int
	var sender string
	r.queryRow("SELECT COUNT(*), MAX(sender_name) FROM secure_message WHERE portal_id=$1 AND from_patient=false",
		[]any{&stored, &sender}, "15551234567")
	assert.Equal(t, 1, stored, "the secure chat holds the template")
	assert.Equal(t, "nurse", sender)

	// {link} in secure mode: the patient reads it inside the secure chat, and the alert
	// carries the one live link, so the template gets words, not a second link.
	var links, linksAfter int
	r.queryRow("SELECT COUNT(*) FROM secure_link WHERE portal_id=$1", []any{&links}, "15551234567")
	require.Positive(t, links, "the alert's link")
	r.command(roomID, "!sms t report")
	r.notice("Sent template report to the secure chat: Your report is ready: this secure chat")
	r.queryRow("SELECT COUNT(*) FROM secure_link WHERE portal_id=$1", []any{&linksAfter}, "15551234567")
	assert.Equal(t, links, linksAfter, "no second link issued for the secure chat")
	r.queryRow("SELECT COUNT(*) FROM secure_message WHERE portal_id=$1 AND from_patient=false", []any{&stored}, "15551234567")
	assert.Equal(t, 2, stored)

	// An emergency in secure mode within the interval: urgent, no second reply by SMS.
	r.inbound("dolor de pecho")
	r.inbound("sigo esperando")
	assert.Equal(t, 1, r.repliesContaining("call 911"))
}

// TestWorkflowRepliesAfterHours: outside business hours a patient's first text in a
// closed period gets the after-hours reply and the on-call staff are mentioned; more
// texts in that period get nothing; the next closed period gets one more; inside hours
// none. The bridge's clock is moved, nothing sleeps.
func TestWorkflowRepliesAfterHours(t *testing.T) { eachDB(t, runWorkflowRepliesAfterHours) }

func runWorkflowRepliesAfterHours(t *testing.T, kind string) {
	var onCall string
	e, nurse, _, ctx := linkedClockEnv(t, kind, func(cfg map[string]any) {
		domain := cfg["homeserver"].(map[string]any)["domain"].(string)
		onCall = "@oncall:" + domain
		network := cfg["network"].(map[string]any)
		network["on_call"] = []any{onCall}
		weekly := map[string]any{}
		for _, day := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
			weekly[day] = "09:00-17:00"
		}
		network["business_hours"] = map[string]any{
			"time_zone":         "UTC",
			"weekly":            weekly,
			"holidays":          []any{},
			"after_hours_reply": "{clinic_name} is closed now. We will answer when we open. For emergencies call 911.",
		}
	})
	r := newRepliesHelper(t, ctx, e, nurse)
	const closed = "Example Clinic is closed now. We will answer when we open. For emergencies call 911. We open again today at 9:00 AM."

	// Tomorrow 03:00 UTC: closed since 17:00 the day before, open again at 09:00.
	night := time.Now().UTC().Truncate(24 * time.Hour).Add(27 * time.Hour)
	offset := time.Until(night)
	e.br.SetClock(offset)

	r.inbound("Hello, I need to reschedule my appointment")
	_, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && m.Body == closed })
	require.NoError(t, err, "the after-hours reply, with the next opening")
	n := r.notice("After hours")
	assert.Contains(t, n.Body, onCall, "the on-call staff are mentioned")
	r.inbound("Are you there?")
	r.inbound("Thanks")
	assert.Equal(t, 1, r.repliesContaining("is closed now"), "once per closed period")

	// The next night is a new closed period: one more reply.
	e.br.SetClock(offset + 24*time.Hour)
	r.inbound("Still need to reschedule")
	require.Eventually(t, func() bool { return r.repliesContaining("is closed now") == 2 }, time.Minute, 100*time.Millisecond,
		"a new closed period gets a new reply")
	r.inbound("ok")
	assert.Equal(t, 2, r.repliesContaining("is closed now"))

	// 11:00: open. No reply.
	e.br.SetClock(offset + 32*time.Hour)
	r.inbound("Good morning, can someone call me?")
	r.inbound("Thank you")
	assert.Equal(t, 2, r.repliesContaining("is closed now"), "inside business hours: no after-hours reply")
	assert.Equal(t, 2, countNoticesContaining(nurse, "After hours"))
}

// repliesHelper bundles what the workflow reply tests do with the patient, the room, the
// fake Twilio and the bridge's database.
type repliesHelper struct {
	t     *testing.T
	ctx   context.Context
	e     *env
	nurse *testenv.StaffAgent
}

func newRepliesHelper(t *testing.T, ctx context.Context, e *env, nurse *testenv.StaffAgent) *repliesHelper {
	return &repliesHelper{t: t, ctx: ctx, e: e, nurse: nurse}
}

// inbound texts the clinic as the patient and waits until the text is in the room. Texts
// are delivered in order, each after the rules ran for the one before.
func (r *repliesHelper) inbound(body string) {
	r.t.Helper()
	res, err := r.e.fake.SendInbound(r.ctx, patient, clinicPhone, body)
	require.NoError(r.t, err)
	require.Equal(r.t, 200, res.StatusCode, res.Body)
	_, err = r.nurse.WaitMessage(r.ctx, func(m testenv.AgentMessage) bool { return m.Body == body && m.MsgType == "m.text" })
	require.NoError(r.t, err, "the patient's text reaches the room")
}

func (r *repliesHelper) command(roomID, body string) {
	r.t.Helper()
	_, _, err := r.nurse.Send(r.ctx, roomID, body)
	require.NoError(r.t, err)
}

func (r *repliesHelper) notice(contains string) testenv.AgentMessage {
	r.t.Helper()
	m, err := r.nurse.WaitMessage(r.ctx, func(m testenv.AgentMessage) bool {
		return m.MsgType == "m.notice" && strings.Contains(m.Body, contains)
	})
	require.NoError(r.t, err, "notice containing %q", contains)
	return m
}

func (r *repliesHelper) repliesContaining(s string) int {
	n := 0
	for _, m := range r.e.fake.Messages() {
		if m.To == patient && strings.Contains(m.Body, s) {
			n++
		}
	}
	return n
}

func (r *repliesHelper) queryRow(query string, dest []any, args ...any) {
	r.t.Helper()
	driver := "postgres"
	if r.e.db.Type != "postgres" {
		driver = "sqlite3"
		query = strings.ReplaceAll(query, "$1", "?1")
	}
	db, err := sql.Open(driver, r.e.db.URI)
	require.NoError(r.t, err)
	defer db.Close()
	require.NoError(r.t, db.QueryRow(query, args...).Scan(dest...), query)
}

func (r *repliesHelper) urgent() bool {
	r.t.Helper()
	var urgent bool
	r.queryRow("SELECT urgent FROM conversation WHERE portal_id=$1", []any{&urgent}, "15551234567")
	return urgent
}

func countNoticesContaining(a *testenv.StaffAgent, s string) int {
	n := 0
	for _, m := range a.Messages() {
		if m.MsgType == "m.notice" && strings.Contains(m.Body, s) {
			n++
		}
	}
	return n
}
