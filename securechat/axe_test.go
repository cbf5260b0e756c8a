package securechat

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// TestAxeFindsNothingOnAnyPatientPage runs axe-core (WCAG 2.x A and AA, and best
// practices) on every page a patient can see, in English and Spanish: the link, the code
// page (with a date of birth and a wrong answer too), the chat with every kind of message
// and the clinic's activity, and every dead end.
func TestAxeFindsNothingOnAnyPatientPage(t *testing.T) {
	axe := testenv.AxeSource(t)
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	e.svc.Config.Pages = config.PagesConfig{ClinicPhone: "+15550001111", HelpURL: "https://riverside.example/help",
		PrivacyURL: "https://riverside.example/privacy", AccessibilityURL: "https://riverside.example/accessibility"}
	ctx := context.Background()
	e.staffMessage(browserStaffFirst)
	_, err := e.svc.AddStaffMessage(ctx, e.conv, testNurse, testStaffName, database.SecureFile, "lab-report.pdf",
		"application/pdf", []byte("%PDF-1.4\n%%EOF\n"), "$pdf")
	require.NoError(t, err)

	// Dead ends, each on a conversation of its own.
	issue := func(portal, phone string) (*database.Conversation, string) {
		conv := e.newConversation(portal, phone)
		link, err := e.svc.IssueLink(ctx, conv, testNurse)
		require.NoError(t, err)
		return conv, link
	}
	revokedConv, revoked := issue("15552220001", "+15552220001")
	require.NoError(t, e.svc.Revoke(ctx, revokedConv, testNurse))
	dobConv, dobLink := issue("15552220002", "+15552220002")
	require.NoError(t, e.svc.SetDOB(ctx, dobConv, "1980-02-03", testNurse))
	_, locked := issue("15552220003", "+15552220003")
	lockLink(t, e, locked)

	browser := testenv.NewBrowser(t, true)
	check := func(name string) {
		t.Helper()
		vctx, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		violations, err := testenv.AxeViolations(vctx, axe)
		require.NoError(t, err, name)
		assert.Empty(t, violations, "axe on the %s", name)
	}
	for _, lang := range []string{"en", "es"} {
		browserRun(t, browser, chromedp.Navigate(e.linkURL+"?lang="+lang), chromedp.WaitVisible(chromedp.ID("send-code")))
		check("link page (" + lang + ")")
		browserRun(t, browser, chromedp.Navigate(e.srv.URL+LinkPath+"AAAAAAAAAAAAAAAAAAAAAAAAA"), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("unknown link page (" + lang + ")")
		browserRun(t, browser, chromedp.Navigate(revoked), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("revoked link page (" + lang + ")")
		browserRun(t, browser, chromedp.Navigate(locked), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("locked link page (" + lang + ")")
		browserRun(t, browser, chromedp.Navigate(e.srv.URL+"/chat/signed-out"), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("signed-out page (" + lang + ")")

		// The code page with a date of birth, then with a wrong answer.
		browserRun(t, browser, chromedp.Navigate(dobLink), chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
		check("code page with a date of birth (" + lang + ")")
		browserRun(t, browser, chromedp.SendKeys(chromedp.ID("code"), wrongCode(e.backend.lastCode(t))),
			chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("form-error")))
		check("code page with a wrong answer (" + lang + ")")

		// The code page and the chat.
		browserRun(t, browser, chromedp.Navigate(e.linkURL), chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
		check("code page (" + lang + ")")
		browserRun(t, browser, chromedp.SendKeys(chromedp.ID("code"), e.backend.lastCode(t)), chromedp.Click(chromedp.ID("verify")),
			chromedp.WaitVisible(chromedp.ID("messages")))
		if lang == "en" {
			browserRun(t, browser, chromedp.SendKeys(chromedp.ID("text"), browserPatientText), chromedp.Click(chromedp.ID("send")))
			waitText(t, browser, "#messages li.mine", "It itches most at night.")
			pngPath, _ := writeTestPNG(t)
			browserRun(t, browser, chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{pngPath}), chromedp.Click(chromedp.ID("upload")),
				chromedp.WaitVisible(chromedp.CSS("#messages li.mine img")))
			waitText(t, browser, "#upload-status", "Sent.")
			check("chat page after sending (" + lang + ")")
			require.NoError(t, e.svc.StaffRead(ctx, e.conv, 0, e.clock.Now()))
			e.svc.StaffTyping(e.conv, "@kim:clinic.example", testStaffName, true)
			waitText(t, browser, "#typing", "is typing")
		}
		browserRun(t, browser, chromedp.Navigate(e.srv.URL+"/chat"), chromedp.WaitVisible(chromedp.ID("messages")))
		waitText(t, browser, "#seen", map[string]string{"en": "Seen by the clinic", "es": "Visto por la clínica"}[lang])
		check("chat page (" + lang + ")")
		browserRun(t, browser, chromedp.Navigate(e.srv.URL+"/chat/file/999999"), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("file not found page (" + lang + ")")
		browserRun(t, browser, chromedp.Navigate(e.srv.URL+"/chat"), chromedp.WaitVisible(chromedp.ID("signout")),
			chromedp.Click(chromedp.ID("signout")))
		// Until the sign-out's navigation has landed: navigating away during it aborts both.
		require.Eventually(t, func() bool {
			loc, err := chromedp.Run(browser, chromedp.Location())
			return err == nil && loc == e.srv.URL+"/chat/signed-out"
		}, 20*time.Second, 50*time.Millisecond, "signed out")
		browserRun(t, browser, chromedp.WaitVisible(chromedp.CSS("h1")))
	}

	// Last, as it moves the clock: the expired link.
	e.clock.Advance(73 * time.Hour)
	for _, lang := range []string{"en", "es"} {
		browserRun(t, browser, chromedp.Navigate(e.linkURL+"?lang="+lang), chromedp.WaitVisible(chromedp.CSS("h1")))
		waitText(t, browser, "h1", map[string]string{"en": "expired", "es": "venci"}[lang])
		check("expired link page (" + lang + ")")
	}
}

// lockLink enters wrong codes on a link until it locks, as a person guessing would.
func lockLink(t *testing.T, e *webEnv, link string) {
	t.Helper()
	c := e.newClient()
	path := link[len(e.srv.URL):]
	page := c.get(path)
	csrf := csrfOf(t, page.Body)
	require.Equal(t, 303, c.post(path+"/code", url.Values{"csrf": {csrf}}).Status)
	wrong := wrongCode(e.backend.lastCode(t))
	for range e.svc.Config.MaxWrongCodes {
		c.post(path+"/verify", url.Values{"csrf": {csrf}, "code": {wrong}})
	}
	require.Contains(t, c.get(path).Body, "locked")
}
