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

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/internal/twiliosim"
	"github.com/carebridge/carebridge/sms"
)

// TestSimulatorProvider: with network.provider simulator (and no Twilio at all), a text
// typed on the simulated phone page reaches the nurse encrypted, her reply shows up in
// the phone's inbox, and the simulator's status callbacks show her its delivery (the
// patient's read receipt). A patient number ending in twiliosim.UnreachableSuffix shows
// her a failure instead.
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
	_, err := e.br.LinkNumber(ctx, e.adminID, twiliosim.DemoAccountSID, twiliosim.DemoAuthToken, clinicPhone)
	require.NoError(t, err)
	assert.Contains(t, e.br.Log(), "NO REAL SMS IS SENT", "the bridge warns loudly")
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")

	phonePage := textFromSimulatedPhone(t, e.br.URL(), patient, "Hi, I need to reschedule my physio appointment.")
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	msg, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.Body == "Hi, I need to reschedule my physio appointment."
	})
	require.NoError(t, err)
	assert.True(t, msg.Encrypted)
	reply, _, err := nurse.Send(ctx, roomID, "Sure, does Thursday at 2pm work?")
	require.NoError(t, err)

	var feed struct {
		Messages []twiliosim.Text `json:"messages"`
	}
	for ctx.Err() == nil {
		resp, err := http.Get(phonePage + "/messages.json")
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
	assert.Regexp(t, "^"+regexp.QuoteMeta(e.br.URL()+"/_carebridge/twilio/")+"[^/]+/status#"+regexp.QuoteMeta(sms.ConnectionOverrides)+"$", inbox[0].StatusCallback,
		"the reply carries the bridge's status callback")

	// Delivered: the simulator's signed callbacks reach the bridge, which shows the
	// patient's read receipt on the reply.
	ghost := e.patientGhost(t, ctx, patient)
	_, err = nurse.WaitEvent(ctx, func(ev testenv.AgentEvent) bool {
		return ev.EventType == "m.receipt.m.read" && ev.EventID == reply && ev.Sender == ghost
	})
	require.NoError(t, err, "the patient's read receipt on the delivered reply")

	// Unreachable: the reply to a number ending in the suffix is undelivered, and the
	// nurse reads why in an encrypted notice.
	unreachable := "+1555123" + twiliosim.UnreachableSuffix
	textFromSimulatedPhone(t, e.br.URL(), unreachable, "Can you call me back?")
	msg, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Can you call me back?" })
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, msg.RoomID, "We tried, please call us.")
	require.NoError(t, err)
	failed, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.RoomID == msg.RoomID && m.MsgType == "m.notice" && strings.Contains(m.Body, "phone is unreachable")
	})
	require.NoError(t, err)
	assert.Equal(t, "⚠️ Not delivered: the patient's phone is unreachable (switched off or out of coverage)", failed.Body)
	assert.True(t, failed.Encrypted)
}

// textFromSimulatedPhone texts the clinic from the simulated phone page of phone, as a
// demo user does, and returns the page's URL.
func textFromSimulatedPhone(t *testing.T, bridgeURL, phone, body string) string {
	t.Helper()
	phonePage := bridgeURL + "/_carebridge/simulator/phone/" + url.PathEscape(phone)
	resp, err := http.Get(phonePage)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(page)
	require.NotNil(t, csrf)

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(phonePage+"/send", url.Values{"csrf": {string(csrf[1])}, "to": {clinicPhone}, "body": {body}})
	require.NoError(t, err)
	errPage, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s", errPage)
	return phonePage
}

// TestSimulatorPhoneInBrowser drives the simulated phone page in Chromium as a demo user
// would: text the clinic, receive the staff's secure-message alert, and open its link.
func TestSimulatorPhoneInBrowser(t *testing.T) {
	_, err := testenv.ChromiumPath()
	testenv.RequireDep(t, testenv.DepChromium, err)
	e, nurse, _, ctx := linkedEnv(t, "sqlite", func(cfg map[string]any) {
		network := cfg["network"].(map[string]any)
		network["provider"] = "simulator"
		network["twilio"].(map[string]any)["api_url"] = ""
	})
	browser := testenv.NewBrowser(t, true)
	do := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(actx, actions...))
	}
	axe := testenv.AxeSource(t)
	checkAxe := func(name string) {
		t.Helper()
		actx, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		violations, err := testenv.AxeViolations(actx, axe)
		require.NoError(t, err)
		assert.Empty(t, violations, "axe on the simulated phone's %s", name)
	}

	// The first page says which number to text; numbers are typed as on a phone.
	do(chromedp.Navigate(e.br.URL()+"/_carebridge/simulator/"), chromedp.WaitVisible(chromedp.ID("clinic-number")))
	first, err := chromedp.Run(browser, chromedp.TextContent(chromedp.ID("clinic-number")))
	require.NoError(t, err)
	assert.Contains(t, first, "Text the clinic at (555) 000-1111")
	checkAxe("first page")
	do(chromedp.SendKeys(chromedp.ID("phone"), sms.FormatPhone(patient, "US")), chromedp.Submit(chromedp.ID("phone")),
		chromedp.WaitVisible(chromedp.ID("body")))
	loc, err := chromedp.Run(browser, chromedp.Location())
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(loc, "/phone/"+url.PathEscape(patient)) || strings.HasSuffix(loc, "/phone/"+patient), loc)
	do(chromedp.SetValue(chromedp.ID("to"), "(555) 000-1111"), chromedp.SendKeys(chromedp.ID("body"), "Hi, my daughter has a rash on her arm."),
		chromedp.Click(chromedp.CSS("#compose button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("article.msg.out")))

	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Hi, my daughter has a rash on her arm." })
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, "!sms secure")
	require.NoError(t, err)
	notice(t, ctx, nurse, "Secure mode")
	_, _, err = nurse.Send(ctx, roomID, "Please send us a photo of the rash through the secure link.")
	require.NoError(t, err)

	// The page polls for new texts: the alert arrives with its link as an anchor.
	var href string
	require.Eventually(t, func() bool {
		actx, cancel := context.WithTimeout(browser, 5*time.Second)
		defer cancel()
		v, err := chromedp.Run(actx, chromedp.AttributeValue(chromedp.CSS(`article.msg.in a[href*="/s/"]`), "href"))
		href = v.Value
		return err == nil && href != ""
	}, 30*time.Second, 500*time.Millisecond, "the alert with its link shows on the phone")
	text, err := chromedp.Run(browser, chromedp.TextContent(chromedp.CSS("article.msg.in")))
	require.NoError(t, err)
	assert.NotContains(t, text, "photo of the rash", "the phone shows only the alert, not the message")
	checkAxe("phone page with texts both ways") // the time lines on both bubbles among them
	do(chromedp.Navigate(href), chromedp.WaitVisible(chromedp.ID("send-code")))
}
