package main

import (
	"context"
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
)

// TestWebReplicas: the bridge and two `carebridge web` replicas on one PostgreSQL database.
// In Chromium the patient opens the link and enters the code on replica A (the bridge
// texts the code), reads the staff message there (the ghost's read receipt appears in the
// room), then reads and replies on replica B (the nurse decrypts the reply), where the
// nurse's reading ("Seen") and typing show too; a staff message then appears live,
// without a reload, on the pages open on both replicas.
func TestWebReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite, the bridge, two web replicas, matrix-nio and Chromium")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	_, err := testenv.ChromiumPath()
	testenv.RequireDep(t, testenv.DepChromium, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, "postgres")
	replicaA, replicaB := e.br.StartWeb(t), e.br.StartWeb(t)
	_, err = e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	setDisplayName(t, e.hs.URL(), matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1"), e.nurseID, "Nurse Kim")
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Hello, are my test results back?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, "!sms secure")
	require.NoError(t, err)
	notice(t, ctx, nurse, "Secure mode")

	const phi = "Your HbA1c came back at 7.9%. Please book a diabetes review."
	firstStaff, _, err := nurse.Send(ctx, roomID, phi)
	require.NoError(t, err)
	alert, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "secure message")
	})
	require.NoError(t, err)
	link := regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]+`).FindString(alert.Body)
	require.NotEmpty(t, link, alert.Body)
	linked, err := url.Parse(link)
	require.NoError(t, err)
	// A load balancer sends the patient to any replica: here, A for the link and the code.
	linkA := replicaA.URL() + linked.Path

	browser := testenv.NewBrowser(t, true)
	do := func(tab context.Context, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, acancel := context.WithTimeout(tab, 30*time.Second)
		defer acancel()
		require.NoError(t, chromedp.Do(actx, actions...))
	}
	textOf := func(tab context.Context) string {
		t.Helper()
		actx, acancel := context.WithTimeout(tab, 30*time.Second)
		defer acancel()
		text, err := chromedp.Run(actx, chromedp.TextContent(chromedp.ID("messages")))
		require.NoError(t, err)
		return text
	}
	// showsLive waits until the page shows text without being reloaded (the live updates).
	showsLive := func(tab context.Context, text string) error {
		actx, acancel := context.WithTimeout(tab, 20*time.Second)
		defer acancel()
		_, err := chromedp.Run(actx, chromedp.Poll[chromedp.Void](`document.getElementById('messages').textContent.includes(`+jsString(text)+`)`,
			chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
		return err
	}
	mark := func(tab context.Context, expr string) int {
		t.Helper()
		actx, acancel := context.WithTimeout(tab, 10*time.Second)
		defer acancel()
		v, err := chromedp.Run(actx, chromedp.Evaluate[int](expr))
		require.NoError(t, err)
		return v
	}
	t.Log("The patient opens the link on replica A")
	codesBefore := len(e.fake.Messages())
	do(browser, chromedp.Navigate(linkA), chromedp.WaitVisible(chromedp.ID("send-code")))
	do(browser, chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
	codeSMS, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "your code is")
	})
	require.NoError(t, err, "the bridge texts the code the patient asked for on replica A")
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(codeSMS.Body)
	require.NotEmpty(t, code)
	do(browser, chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("messages")))
	assert.Contains(t, textOf(browser), phi, "the patient reads the staff message on replica A")
	assert.Len(t, e.fake.Messages(), codesBefore+1, "one code texted, nothing else")
	ghost := e.patientGhost(t, ctx, patient)
	_, err = nurse.WaitEvent(ctx, func(ev testenv.AgentEvent) bool {
		return ev.EventType == "m.receipt.m.read" && ev.EventID == firstStaff && ev.Sender == ghost
	})
	require.NoError(t, err, "the reading on replica A shows in the room")

	// The same browser session on replica B: its page shows the conversation, and the
	// patient replies there.
	t.Log("The patient goes on on replica B")
	tabB, cancelB := chromedp.NewContext(browser)
	defer cancelB()
	// The first action opens the tab: it must not carry a timeout.
	require.NoError(t, chromedp.Do(tabB, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)))
	do(tabB, chromedp.Navigate(replicaB.URL()+"/chat"), chromedp.WaitVisible(chromedp.ID("messages")))
	assert.Contains(t, textOf(tabB), phi, "the session started on A holds on B")
	const reply = "Thanks. Could the review be on Tuesday afternoon?"
	do(tabB, chromedp.SendKeys(chromedp.ID("text"), reply))
	clicked := time.Now()
	do(tabB, chromedp.Click(chromedp.ID("send")))
	got, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "🔒 "+reply })
	require.NoError(t, err, "the reply sent on replica B reaches the room")
	assert.True(t, got.Encrypted)
	assert.Equal(t, ghost, got.Sender)
	replyLatency := got.ReceivedAt().Sub(clicked)
	require.NoError(t, showsLive(browser, reply), "the reply sent on B shows live on A's page")

	// What the clinic does shows on the replica's page: the nurse's client reads the reply
	// ("Seen by the clinic"), then she types (her name; the bridge holds typing in memory
	// and signals it to the replicas).
	waitText := func(tab context.Context, id, want string) {
		t.Helper()
		require.Eventually(t, func() bool {
			tctx, tcancel := context.WithTimeout(tab, 5*time.Second)
			defer tcancel()
			text, err := chromedp.Run(tctx, chromedp.TextContent(chromedp.ID(id)))
			return err == nil && text == want
		}, 20*time.Second, 100*time.Millisecond, "#%s never read %q", id, want)
	}
	require.NoError(t, nurse.Read(ctx, roomID, got.EventID))
	waitText(tabB, "seen", "Seen by the clinic")
	require.NoError(t, nurse.Typing(ctx, roomID, true))
	waitText(tabB, "typing", "Nurse Kim is typing…")
	waitText(browser, "typing", "Nurse Kim is typing…")
	require.NoError(t, nurse.Typing(ctx, roomID, false))
	waitText(tabB, "typing", "")

	// A staff message shows live on the pages open on both replicas, without a reload.
	t.Log("A staff message while the pages are open on both replicas")
	for _, tab := range []context.Context{browser, tabB} {
		mark(tab, `window.carebridgeMarker = 42`)
	}
	const later = "Tuesday at 2:30pm works. See you then."
	secondStaff, sentAt, err := nurse.Send(ctx, roomID, later)
	require.NoError(t, err)
	for name, tab := range map[string]context.Context{"A": browser, "B": tabB} {
		require.NoError(t, showsLive(tab, later), "the staff message appears live on replica %s", name)
		assert.Equal(t, 42, mark(tab, `window.carebridgeMarker`), "replica %s's page was not reloaded", name)
	}
	liveLatency := time.Since(sentAt)
	_, err = nurse.WaitEvent(ctx, func(ev testenv.AgentEvent) bool {
		return ev.EventType == "m.receipt.m.read" && ev.EventID == secondStaff && ev.Sender == ghost
	})
	require.NoError(t, err, "reading it on the replicas shows in the room")
	t.Logf("reply on replica B → decrypted at nio: %v; staff message → shown on both replicas: within %v", replyLatency, liveLatency)

	for name, replica := range map[string]*testenv.WebReplica{"A": replicaA, "B": replicaB} {
		resp, err := http.Get(replica.URL() + "/readyz")
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "replica %s ready", name)
		for _, secret := range []string{"HbA1c", "Tuesday", code, linked.Path} {
			assert.NotContains(t, replica.Log(), secret, "replica %s's log", name)
		}
	}
	for _, secret := range []string{"HbA1c", "Tuesday", code} {
		assert.NotContains(t, e.br.Log(), secret)
	}
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
