package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestNoPHIInLogs runs the SMS flow (texts, MMS both ways, a keyword, a name, then a room
// created for a second clinic number with that name from the start) and the
// secure flow (date of birth, link, code, chat, upload, download, sign-out) with the
// bridge logging at trace level, then searches everything it wrote for what must never
// be there: message bodies, the patient's number beyond its last four digits (in any
// form), the code, the link token, the date of birth and the session ID.
func TestNoPHIInLogs(t *testing.T) { eachDB(t, runNoPHIInLogs) }

func runNoPHIInLogs(t *testing.T, kind string) {
	_, err := testenv.ChromiumPath()
	testenv.RequireDep(t, testenv.DepChromium, err)
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		cfg["logging"].(map[string]any)["min_level"] = "trace"
	})
	bodies := []string{
		"My ankle has been swollen since Tuesday",
		"Photo of the ankle attached",
		"Please keep it raised and use ice",
		"Your x-ray shows a hairline fracture",
		"Can I still walk to work tomorrow",
		"Stay off it and book a cast fitting",
		"Is the clinic on Elm Street open on Saturday",
	}

	// SMS mode. The patient is named in the first room, then texts a second clinic
	// number: bridgev2 creates that room with the name already in createRoom's
	// initial_state (m.room.name), which mautrix logs at debug level.
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, bodies[0])
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, "!sms name Jane Doe")
	require.NoError(t, err)
	notice(t, ctx, nurse, "now shown as")
	const secondClinic = "+15550002222"
	e.fake.AddNumber(accountSID, secondClinic)
	_, err = e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, secondClinic)
	require.NoError(t, err)
	_, err = e.fake.SendInbound(ctx, patient, secondClinic, bodies[6])
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.RoomID != roomID && m.Body == bodies[6] })
	require.NoError(t, err, "the second clinic number's room")
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, bodies[1], e.fake.AddMedia("image/jpeg", testJPEG(t)))
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.MsgType == "m.image" })
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, bodies[2])
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return strings.Contains(m.Body, bodies[2]) })
	require.NoError(t, err)
	_, err = nurse.SendFile(ctx, roomID, "ankle-care.png", "image/png", testPNG(t))
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return len(m.MediaURLs) > 0 })
	require.NoError(t, err)
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Info?") // HELP is answered by (fake) Twilio itself
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient && strings.Contains(m.Body, "emergencies") })
	require.NoError(t, err)

	// Secure mode, with a date of birth.
	_, _, err = nurse.Send(ctx, roomID, "!sms dob 1980-02-29")
	require.NoError(t, err)
	notice(t, ctx, nurse, "date of birth")
	_, _, err = nurse.Send(ctx, roomID, "!sms secure")
	require.NoError(t, err)
	notice(t, ctx, nurse, "Secure mode")
	_, _, err = nurse.Send(ctx, roomID, bodies[3])
	require.NoError(t, err)
	alert, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return strings.Contains(m.Body, "secure message") })
	require.NoError(t, err)
	link := regexp.MustCompile(`https?://\S+/s/([A-Za-z0-9_-]+)`).FindStringSubmatch(alert.Body)
	require.NotNil(t, link, alert.Body)
	_, err = nurse.SendFile(ctx, roomID, "cast-instructions.pdf", "application/pdf", []byte("%PDF-1.4\ncast instructions"))
	require.NoError(t, err)

	browser := testenv.NewBrowser(t, true)
	do := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, acancel := context.WithTimeout(browser, 30*time.Second)
		defer acancel()
		require.NoError(t, chromedp.Do(actx, actions...))
	}
	do(chromedp.Navigate(link[0]), chromedp.WaitVisible(chromedp.ID("send-code")))
	do(chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
	codeSMS, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return strings.Contains(m.Body, "your code is") })
	require.NoError(t, err)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(codeSMS.Body)
	require.NotEmpty(t, code)
	do(chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.SendKeys(chromedp.ID("dob-month"), "02"), chromedp.SendKeys(chromedp.ID("dob-day"), "29"),
		chromedp.SendKeys(chromedp.ID("dob-year"), "1980"),
		chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("messages")))
	cookies, err := chromedp.Call(browser, network.GetCookies, network.GetCookiesParams{URLs: []string{e.br.URL() + "/chat"}})
	require.NoError(t, err)
	var session string
	for _, c := range cookies.Cookies {
		if strings.Contains(c.Name, "carebridge") {
			session = c.Value
		}
	}
	require.NotEmpty(t, session, "the session cookie")
	do(chromedp.WaitVisible(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), bodies[4]))
	do(chromedp.Click(chromedp.ID("send")))
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return strings.HasSuffix(m.Body, bodies[4]) })
	require.NoError(t, err)
	photoPath := filepath.Join(t.TempDir(), "swelling.png")
	require.NoError(t, os.WriteFile(photoPath, testPNG(t), 0o600))
	do(chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{photoPath}), chromedp.Click(chromedp.ID("upload")))
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.MsgType == "m.image" && m.Body == "swelling.png" })
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, bodies[5])
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		nctx, ncancel := context.WithTimeout(browser, 10*time.Second)
		defer ncancel()
		if chromedp.Do(nctx, chromedp.Navigate(e.br.URL()+"/chat")) != nil {
			return false
		}
		text, err := chromedp.Run(nctx, chromedp.TextContent(chromedp.ID("messages")))
		return err == nil && strings.Contains(text, bodies[5]) && strings.Contains(text, "cast-instructions.pdf")
	}, 30*time.Second, 500*time.Millisecond)
	attr, err := chromedp.Run(browser, chromedp.AttributeValue(`a[href*="/file/"]`, "href"))
	require.NoError(t, err)
	// The download ends the navigation (Content-Disposition: attachment): ERR_ABORTED.
	if err = chromedp.Do(browser, chromedp.Navigate(e.br.URL()+attr.Value)); err != nil {
		require.Contains(t, err.Error(), "ERR_ABORTED")
	}
	do(chromedp.Navigate(e.br.URL()+"/chat"), chromedp.WaitVisible(chromedp.ID("signout")), chromedp.Click(chromedp.ID("signout")))
	time.Sleep(time.Second) // the last requests' log lines

	log := e.br.Log()
	require.Contains(t, log, `"level":"trace"`, "the bridge logged at trace level")
	forbidden := map[string]string{
		"the code": code, "the link token": link[1], "the session ID": session,
		"the date of birth": "1980-02-29", "the date of birth (US)": "02/29/1980", "the date of birth (digits)": "19800229",
		"the date of birth (as typed)": `"dob_year":"1980"`,
		"the patient's name":           "Jane Doe",
	}
	for i, b := range bodies {
		forbidden["message body "+string(rune('1'+i))] = b
	}
	allDigits := regexp.MustCompile(`^[0-9]+$`)
	for what, s := range forbidden {
		i := strings.Index(log, s)
		if allDigits.MatchString(s) {
			// A number in the log is the secret only where no digit stands beside it: a
			// six-digit code once matched inside a timestamp's nanoseconds
			// ("…26.777104952Z"), a false alarm that failed CI.
			i = -1
			if loc := regexp.MustCompile(`(^|\D)` + s + `(\D|$)`).FindStringIndex(log); loc != nil {
				i = loc[0]
			}
		}
		if i >= 0 {
			t.Errorf("%s appears in the bridge log: …%s…", what, excerpt(log, i, len(s)+2))
		}
	}
	// The patient's number, in any form, beyond its last four digits: +15551234567,
	// 15551234567, 5551234567, (555) 123-4567, 555-123-4567, %2B15551234567 …
	digits := regexp.MustCompile(`[0-9][0-9 ().\-]{6,20}[0-9]`)
	for _, loc := range digits.FindAllStringIndex(log, -1) {
		run := regexp.MustCompile(`\D`).ReplaceAllString(log[loc[0]:loc[1]], "")
		if strings.Contains(run, "5551234") {
			t.Errorf("the patient's number appears in the bridge log: …%s…", excerpt(log, loc[0], loc[1]-loc[0]))
			break
		}
	}
}

// excerpt is the text around a hit, on one line.
func excerpt(s string, at, n int) string {
	from, to := max(at-80, 0), min(at+n+40, len(s))
	return strings.ReplaceAll(s[from:to], "\n", "⏎")
}
