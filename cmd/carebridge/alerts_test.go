package main

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestLateSecureMessageIsAlerted: the patient is alerted of the first secure message; a
// second one sent within the quiet period is alerted when the period ends (by the bridge's
// clock), in the language the patient chose on the page.
func TestLateSecureMessageIsAlerted(t *testing.T) { eachDB(t, runLateSecureMessageIsAlerted) }

func runLateSecureMessageIsAlerted(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedClockEnv(t, kind, nil)
	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Are my lab results back?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, "!sms secure")
	require.NoError(t, err)
	notice(t, ctx, nurse, "Secure mode")

	alerts := func() (out []testenv.FakeMessage) {
		for _, m := range e.fake.Messages() {
			if m.To == patient && strings.Contains(m.Body, "/s/") {
				out = append(out, m)
			}
		}
		return out
	}
	_, _, err = nurse.Send(ctx, roomID, "Your lab results are in; nothing worrying.")
	require.NoError(t, err)
	first, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && strings.Contains(m.Body, "/s/") })
	require.NoError(t, err)
	assert.Contains(t, first.Body, "you have a new secure message")

	// The patient opens the link in Spanish and asks for a code (and reads nothing yet).
	link := regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]+`).FindString(first.Body)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(link + "?lang=es")
	require.NoError(t, err)
	resp.Body.Close()
	csrf := ""
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "carebridge-csrf") {
			csrf = c.Value
		}
	}
	require.NotEmpty(t, csrf)
	resp, err = client.PostForm(link+"/code", url.Values{"csrf": {csrf}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && strings.Contains(m.Body, "su código es") })
	require.NoError(t, err, "the code comes in the page's language")

	// A second message 7 minutes into the quiet period: no alert now…
	e.br.SetClock(7 * time.Minute)
	_, _, err = nurse.Send(ctx, roomID, "One more thing: your potassium is a little high, please repeat the test.")
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	require.Len(t, alerts(), 1, "no second alert within the quiet period")
	// …but when the quiet period ends, in Spanish.
	e.br.SetClock(16 * time.Minute)
	second, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "/s/") && m.SID != first.SID
	})
	require.NoError(t, err, "the held-back alert is texted when the quiet period ends")
	assert.Contains(t, second.Body, "tiene un mensaje seguro nuevo", "in the language the patient chose")
	assert.NotContains(t, second.Body, "potassium", "no PHI on SMS")
	time.Sleep(time.Second)
	assert.Len(t, alerts(), 2, "one alert for the held-back message")
}
