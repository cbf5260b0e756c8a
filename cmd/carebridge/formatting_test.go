package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestFormattedStaffMessage: a staff message written with Element's formatting (bold, a
// link, a user pill; markdown as the body, HTML as the formatted body) sent by the E2EE
// staff client reaches the patient as plain text: no asterisks, the link's address after
// its words, the pill as the name it shows.
func TestFormattedStaffMessage(t *testing.T) { eachDB(t, runFormattedStaffMessage) }

func runFormattedStaffMessage(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Do I need to fast before the test?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Do I need to fast before the test?" })
	require.NoError(t, err)

	kim := "@kim:" + e.hs.ServerName()
	_, err = nurse.SendHTML(ctx, roomID,
		"**Yes**, nothing after _midnight_. See [the instructions](https://clinic.example/fasting). Kim will call you.",
		`<strong>Yes</strong>, nothing after <em>midnight</em>. See <a href="https://clinic.example/fasting">the instructions</a>. `+
			`<a href="https://matrix.to/#/`+kim+`">Kim</a> will call you.`)
	require.NoError(t, err)
	sms, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	assert.Equal(t, "nurse: Yes, nothing after midnight. See the instructions (https://clinic.example/fasting). Kim will call you.", sms.Body)
	assert.NotContains(t, sms.Body, "matrix.to", "no pill link")
	assert.NotContains(t, sms.Body, kim)
}
