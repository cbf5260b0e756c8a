package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestKeywords: STOP and its synonyms opt the number out (recorded, staff told, no text
// sent while opted out and no API call made), START opts in, HELP/INFO get the clinic's
// help text; carebridge does not answer what Twilio already answered (OptOutType).
func TestKeywords(t *testing.T) { eachDB(t, runKeywords) }

func runKeywords(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	var err error

	inbound := func(body string) {
		t.Helper()
		res, err := e.fake.SendInbound(ctx, patient, clinicPhone, body)
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, res.Body)
		_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == body && m.MsgType == "m.text" })
		require.NoError(t, err, "every keyword text still reaches the room")
	}
	waitNotice := func(contains string) testenv.AgentMessage {
		t.Helper()
		m, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
			return m.MsgType == "m.notice" && strings.Contains(m.Body, contains)
		})
		require.NoError(t, err, "notice containing %q", contains)
		return m
	}
	repliesTo := func() []string {
		var bodies []string
		for _, m := range e.fake.Messages() {
			if m.To == patient {
				bodies = append(bodies, m.Body)
			}
		}
		return bodies
	}

	inbound("Hi, can I get my refill?")
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)

	// "Stop!" is not Twilio's exact keyword, so carebridge records it and answers itself.
	inbound("  Stop! ")
	waitNotice("has opted out")
	optOutReply := "You will receive no more texts from Example Clinic. Reply START to receive texts again."
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && m.Body == optOutReply })
	require.NoError(t, err)

	// Staff write while opted out: a notice, and no request reaches Twilio.
	_, _, err = nurse.Send(ctx, roomID, "Your refill is ready.")
	require.NoError(t, err)
	waitNotice("opted out (STOP)")
	assert.NotContains(t, strings.Join(repliesTo(), "\n"), "Your refill is ready")

	// START (Twilio's own keyword: it answered, OptOutType is set): opted in, no second answer.
	inbound("START")
	waitNotice("allowed again")
	_, _, err = nurse.Send(ctx, roomID, "Your refill is ready.")
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.Body == "nurse: Your refill is ready." })
	require.NoError(t, err)

	// HELP is answered by Twilio here; "Info?" is not Twilio's exact keyword, so carebridge answers.
	inbound("help")
	inbound("Info?")
	helpText := "Example Clinic: this number is for messages with your care team. For emergencies call 911. Reply STOP to opt out."
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.Body == helpText })
	require.NoError(t, err)
	// A synonym carriers use: REVOKE opts out too.
	inbound("revoke")
	waitNotice("texted \"revoke\" and has opted out")
	// The notice comes first; the answer is texted after it.
	require.Eventually(t, func() bool {
		return strings.Count(strings.Join(repliesTo(), "\n"), optOutReply) >= 2
	}, 30*time.Second, 100*time.Millisecond, "revoke is answered")

	count := map[string]int{}
	for _, b := range repliesTo() {
		count[b]++
	}
	assert.Equal(t, 1, count[helpText], "HELP answered by Twilio is not answered again; Info? once")
	assert.Equal(t, 2, count[optOutReply], "Stop! and revoke are each answered once")
	assert.Zero(t, count["You will receive texts from Example Clinic again. Reply STOP to opt out."],
		"START was answered by Twilio")
}
