package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// setDisplayName sets a user's display name, as a person does in Element's settings.
func setDisplayName(t *testing.T, hsURL, token, userID, name string) {
	body, _ := json.Marshal(map[string]string{"displayname": name})
	req, err := http.NewRequest(http.MethodPut, hsURL+"/_matrix/client/v3/profile/"+url.PathEscape(userID)+"/displayname", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestSecureChatShowsStaffActivity: the patient's chat page says "Seen by the clinic" once
// a staff member's E2EE client reads the patient's message, and "… is typing" while one
// types, under the name they chose: for staff replying through the clinic number (the
// nurse) and for the account that linked it (the admin, through bridgev2's interfaces).
func TestSecureChatShowsStaffActivity(t *testing.T) {
	eachDB(t, func(t *testing.T, kind string) {
		if testing.Short() {
			t.Skip("starts Dendrite, the bridge, matrix-nio and Chromium")
		}
		testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
		_, err := testenv.ChromiumPath()
		testenv.RequireDep(t, testenv.DepChromium, err)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		e := newEnvWith(t, kind, func(cfg map[string]any) {
			network := cfg["network"].(map[string]any)
			nurseID := "@nurse:" + cfg["homeserver"].(map[string]any)["domain"].(string)
			pages := network["secure_chat"].(map[string]any)["pages"].(map[string]any)
			pages["staff_roles"] = map[string]any{nurseID: "Nurse"}
		})
		_, err = e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
		require.NoError(t, err)
		setDisplayName(t, e.hs.URL(), matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1"), e.nurseID, "Nurse Kim")
		nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")
		admin := testenv.StartStaffAgent(t, e.hs.URL(), e.adminID, "admin-password-1")
		_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Hi, is my prescription ready?")
		require.NoError(t, err)
		roomID, err := nurse.WaitJoined(ctx, "")
		require.NoError(t, err)
		_, err = admin.WaitJoined(ctx, roomID)
		require.NoError(t, err)
		_, _, err = nurse.Send(ctx, roomID, "!sms secure")
		require.NoError(t, err)
		notice(t, ctx, nurse, "Secure mode")
		_, _, err = nurse.Send(ctx, roomID, "Your prescription for lisinopril is ready.")
		require.NoError(t, err)
		alert, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
			return m.To == patient && strings.Contains(m.Body, "secure message")
		})
		require.NoError(t, err)
		link := regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]+`).FindString(alert.Body)
		require.NotEmpty(t, link, alert.Body)

		browser := testenv.NewBrowser(t, true)
		do := func(actions ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			actx, acancel := context.WithTimeout(browser, 30*time.Second)
			defer acancel()
			require.NoError(t, chromedp.Do(actx, actions...))
		}
		waitText := func(id, want string) {
			t.Helper()
			require.Eventually(t, func() bool {
				tctx, tcancel := context.WithTimeout(browser, 5*time.Second)
				defer tcancel()
				text, err := chromedp.Run(tctx, chromedp.TextContent(chromedp.ID(id)))
				return err == nil && text == want
			}, 30*time.Second, 100*time.Millisecond, "#%s never read %q", id, want)
		}
		do(chromedp.Navigate(link), chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
		codeSMS, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
			return m.To == patient && strings.Contains(m.Body, "your code is")
		})
		require.NoError(t, err)
		code := regexp.MustCompile(`\b\d{6}\b`).FindString(codeSMS.Body)
		do(chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")),
			chromedp.WaitVisible(chromedp.ID("messages")))

		const reply = "Thank you, I will pick it up tomorrow."
		do(chromedp.SendKeys(chromedp.ID("text"), reply), chromedp.Click(chromedp.ID("send")))
		got, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "🔒 "+reply })
		require.NoError(t, err)
		waitText("seen", "")

		// The nurse's client shows the message and sends its read receipt.
		require.NoError(t, nurse.Read(ctx, roomID, got.EventID))
		waitText("seen", "Seen by the clinic")

		// The nurse types: the name she chose, then nothing once she stops.
		require.NoError(t, nurse.Typing(ctx, roomID, true))
		waitText("typing", "Nurse Kim is typing…")
		require.NoError(t, nurse.Typing(ctx, roomID, false))
		waitText("typing", "")

		// The account that linked the number (its own login: bridgev2's typing interface).
		require.NoError(t, admin.Typing(ctx, roomID, true))
		waitText("typing", "admin is typing…")
		require.NoError(t, admin.Typing(ctx, roomID, false))
		waitText("typing", "")

		// Who wrote: the name from the Matrix profile, the configured role, the clinic; the
		// account that linked the number (not relayed) by its name too.
		_, _, err = admin.Send(ctx, roomID, "The pharmacy closes at 6 pm.")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			tctx, tcancel := context.WithTimeout(browser, 5*time.Second)
			defer tcancel()
			who, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#messages .who')].map(e => e.textContent)`))
			return err == nil && slices.Equal(who, []string{"Nurse Kim, Nurse — Example Clinic", "You", "admin — Example Clinic"})
		}, 30*time.Second, 100*time.Millisecond, "the chat names the nurse and the admin")
	})
}
