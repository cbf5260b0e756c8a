package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

// TestSimulatorProvider: with network.provider simulator (and no Twilio at all), a text
// typed on the simulated phone page reaches the nurse encrypted, and her reply shows up
// in the phone's inbox.
func TestSimulatorProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite, the bridge and matrix-nio")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnvWith(t, "sqlite", func(cfg map[string]any) {
		network := cfg["network"].(map[string]any)
		network["provider"] = "simulator"
		network["twilio"].(map[string]any)["api_url"] = ""
	})
	_, err := e.br.LinkNumber(ctx, e.adminID, sms.SimulatorAccountSID, sms.SimulatorAuthToken, clinicPhone)
	require.NoError(t, err)
	assert.Contains(t, e.br.Log(), "NO REAL SMS IS SENT", "the bridge warns loudly")
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")

	phonePage := e.br.URL() + "/_carebridge/simulator/phone/" + url.PathEscape(patient)
	resp, err := http.Get(phonePage)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(page)
	require.NotNil(t, csrf)

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(phonePage+"/send", url.Values{"csrf": {string(csrf[1])}, "to": {clinicPhone},
		"body": {"Hi, I need to reschedule my physio appointment."}})
	require.NoError(t, err)
	errPage, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s", errPage)

	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.Body == "Hi, I need to reschedule my physio appointment."
	})
	require.NoError(t, err)
	assert.True(t, msg.Encrypted)
	_, _, err = nurse.Send(ctx, roomID, "Sure, does Thursday at 2pm work?")
	require.NoError(t, err)

	var feed struct {
		Messages []sms.SimulatedText `json:"messages"`
	}
	for ctx.Err() == nil {
		resp, err = http.Get(phonePage + "/messages.json")
		require.NoError(t, err)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&feed))
		_ = resp.Body.Close()
		if len(feed.Messages) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the page itself polls the same way
	}
	inbox := feed.Messages
	require.NotEmpty(t, inbox)
	assert.Equal(t, clinicPhone, inbox[0].From)
	assert.True(t, strings.HasSuffix(inbox[0].Body, "Sure, does Thursday at 2pm work?"), inbox[0].Body)
}
