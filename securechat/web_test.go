package securechat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// webTestPNG draws a small picture (a stand-in for a phone photo).
func webTestPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(200 + x*55/w), G: uint8(150 + y*60/h), B: 140, A: 255})
		}
	}
	for y := h / 3; y < 2*h/3; y++ {
		for x := w / 3; x < 2*w/3; x++ {
			if (x-w/2)*(x-w/2)+(y-h/2)*(y-h/2) < (h/6)*(h/6) {
				img.Set(x, y, color.RGBA{R: 190, G: 70, B: 70, A: 255})
			}
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func TestLinkPageChangesNothing(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		ctx := context.Background()
		c := e.newClient()
		for _, agent := range []string{previewBotAgent, whatsAppBotAgent, iMessageBotAgent, "Mozilla/5.0 (iPhone)"} {
			res := c.get(LinkPath+e.token, "User-Agent", agent)
			require.Equal(t, http.StatusOK, res.Status)
			assert.Contains(t, res.Body, "Riverside Clinic sent you a secure message")
			assert.Contains(t, res.Body, "Text me a code")
			assert.Contains(t, res.Body, `method="post" action="/s/`+e.token+`/code"`)
			assert.Contains(t, res.Body, "ending in 67")
			assert.NotContains(t, res.Body, "Maria", "no patient name before the code")
		}
		head := c.request(http.MethodHead, LinkPath+e.token, nil, "User-Agent", previewBotAgent)
		assert.Equal(t, http.StatusOK, head.Status)

		assert.Empty(t, e.backend.texts(), "a GET sends nothing")
		code, err := e.db.Code.Latest(ctx, e.svc.Keys.Hash("link", e.token))
		require.NoError(t, err)
		assert.Nil(t, code, "a GET stores no code")
		row := e.linkRow()
		assert.Zero(t, row.FailedCodes)
		assert.True(t, row.LockedAt.IsZero())
		sent, err := e.db.Audit.Find(ctx, e.conv.LoginID, e.conv.PortalID, "code sent")
		require.NoError(t, err)
		assert.Empty(t, sent)
		// The code page, opened directly, sends nothing either.
		res := c.get(LinkPath + e.token + "/verify")
		assert.Equal(t, http.StatusOK, res.Status)
		assert.Empty(t, e.backend.texts())
	})
}

func TestSendCodeTextsOnlyTheTemplate(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		_, code := c.requestCode()
		texts := e.backend.texts()
		require.Len(t, texts, 1)
		assert.Regexp(t, `^\d{6}$`, code)
		assert.Equal(t, CodeText("en", testClinic, code, e.host(), 10*time.Minute), texts[0], "the text is the template and nothing else")
		assert.True(t, strings.HasSuffix(texts[0], "\n\n@127.0.0.1 #"+code), "origin-bound last line: %q", texts[0])

		page := c.get(LinkPath + e.token + "/verify?sent=1")
		assert.Contains(t, page.Body, `inputmode="numeric"`)
		assert.Contains(t, page.Body, `autocomplete="one-time-code"`)
		assert.Contains(t, page.Body, `<script src="/assets/securechat/code.js?v=`, "WebOTP where the browser has it")
		assert.Contains(t, page.Body, "We texted a 6-digit code to your phone ending in 67")
		assert.NotContains(t, page.Body, "dob_year", "no date of birth unless staff recorded one")
		assert.NotContains(t, page.Body, code, "the page never shows the code")

		// A Spanish browser gets the Spanish text.
		es := e.newClient()
		page = es.get(LinkPath+e.token, "Accept-Language", "es-MX,es;q=0.9,en;q=0.5")
		assert.Contains(t, page.Body, `<html lang="es">`)
		assert.Contains(t, page.Body, "Riverside Clinic le envió un mensaje seguro")
		res := es.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrfOf(t, page.Body)}}, "Accept-Language", "es-MX")
		require.Equal(t, http.StatusSeeOther, res.Status)
		esCode := e.backend.lastCode(t)
		assert.Equal(t, CodeText("es", testClinic, esCode, e.host(), 10*time.Minute), e.backend.texts()[1])
	})
}

func TestSendCodeNeedsCSRF(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		page := c.get(LinkPath + e.token)
		csrf := csrfOf(t, page.Body)
		for _, form := range []url.Values{{}, {"csrf": {""}}, {"csrf": {flipFirst(csrf)}}} {
			res := c.post(LinkPath+e.token+"/code", form)
			assert.Equal(t, http.StatusForbidden, res.Status)
			assert.Contains(t, res.Body, "Please try again")
		}
		// A page from another browser: its cookie is not this one's.
		other := e.newClient()
		res := other.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}})
		assert.Equal(t, http.StatusForbidden, res.Status)
		assert.Empty(t, e.backend.texts())
	})
}

func TestCodeRateLimit(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.get(LinkPath+e.token).Body)
		for range 5 {
			res := c.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}})
			require.Equal(t, http.StatusSeeOther, res.Status)
		}
		res := c.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}})
		assert.Equal(t, http.StatusTooManyRequests, res.Status)
		assert.Contains(t, res.Body, "We have sent several codes in the last hour")
		assert.Contains(t, res.Body, `autocomplete="one-time-code"`, "the code page, to use the last code")
		assert.Len(t, e.backend.texts(), 5)
	})
}

// flipFirst changes a token's first character.
func flipFirst(token string) string {
	if token[0] == 'a' {
		return "b" + token[1:]
	}
	return "a" + token[1:]
}

func wrongCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

func TestWrongCodesLockTheLink(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf, code := c.requestCode()
		for i := range 3 {
			res := c.verify(csrf, wrongCode(code), nil)
			assert.Equal(t, http.StatusBadRequest, res.Status)
			assert.Contains(t, res.Body, "That code is not right. Check the text message and try again.")
			assert.NotContains(t, res.Body, "date of birth", "no date of birth was asked")
			if i < 2 {
				assert.NotContains(t, res.Body, "tries left", "no warning while tries are many")
			}
		}
		page := c.get(LinkPath + e.token + "/verify")
		assert.Contains(t, page.Body, `<p class="error" id="tries-left">You have 2 tries left. After that, this link locks`,
			"the warning stays on the page, from the database's count")
		assert.Contains(t, page.Body, `aria-describedby="tries-left"`)
		// A malformed code is not a guess.
		res := c.verify(csrf, "12a", nil)
		assert.Contains(t, res.Body, "Enter the 6 digits")
		assert.Equal(t, 3, e.linkRow().FailedCodes)

		// A new code does not reset the count.
		res = c.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}})
		require.Equal(t, http.StatusSeeOther, res.Status)
		code = e.backend.lastCode(t)
		res = c.verify(csrf, wrongCode(code), nil)
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, `<p class="error" role="alert" id="form-error">That code is not right. Check the text message and try again. <span id="tries-left">You have 1 try left.`)
		res = c.verify(csrf, wrongCode(code), nil)
		assert.Equal(t, http.StatusForbidden, res.Status, "the fifth wrong code locks")
		assert.Contains(t, res.Body, "This link is locked")
		assert.Contains(t, res.Body, `href="sms:&#43;15550001111?&amp;body=Please%20send%20me%20a%20new%20secure%20link"`, "no dead end: text the clinic")

		// Locked: the right code fails, no new code is sent, the link page says so.
		res = c.verify(csrf, code, nil)
		assert.Equal(t, http.StatusForbidden, res.Status)
		texts := len(e.backend.texts())
		res = c.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}})
		assert.Equal(t, http.StatusForbidden, res.Status)
		assert.Len(t, e.backend.texts(), texts, "a locked link sends no code")
		res = c.get(LinkPath + e.token)
		assert.Equal(t, http.StatusForbidden, res.Status)
		assert.Contains(t, res.Body, "Text the clinic")
		assert.Nil(t, c.cookie("__Host-carebridge"))

		// Staff unlock: a new code then works.
		require.NoError(t, e.svc.Unlock(context.Background(), e.conv, testNurse))
		c.signIn()
	})
}

func TestReplayedCodeFails(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf, code := c.requestCode()
		res := c.verify(csrf, code, nil)
		require.Equal(t, http.StatusSeeOther, res.Status)

		other := e.newClient()
		otherCSRF := csrfOf(t, other.get(LinkPath+e.token+"/verify").Body)
		res = other.verify(otherCSRF, code, nil)
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "not right")
		assert.Nil(t, other.cookie("__Host-carebridge"))
	})
}

func TestExpiredCodeFails(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf, code := c.requestCode()
		e.clock.Advance(11 * time.Minute)
		res := c.verify(csrf, code, nil)
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "That code has expired")
	})
}

func TestUnusableLinks(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		res := c.get(LinkPath + "AAAAAAAAAAAAAAAAAAAAAAAA")
		assert.Equal(t, http.StatusNotFound, res.Status)
		assert.Contains(t, res.Body, "This link does not work")
		assert.Contains(t, res.Body, "Text Riverside Clinic and ask for a new link")
		res = c.get(LinkPath + "short")
		assert.Equal(t, http.StatusNotFound, res.Status)

		csrf := csrfOf(t, c.get(LinkPath+e.token).Body)
		e.clock.Advance(73 * time.Hour)
		res = c.get(LinkPath + e.token)
		assert.Equal(t, http.StatusGone, res.Status)
		assert.Contains(t, res.Body, "This link has expired")
		assert.Contains(t, res.Body, `<a class="button primary" href="sms:&#43;15550001111?&amp;body=Please%20send%20me%20a%20new%20secure%20link">Text the clinic</a>`)
		assert.Contains(t, res.Body, "(555) 000-1111")
		res = c.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}})
		assert.Equal(t, http.StatusGone, res.Status)
		res = c.get(LinkPath + e.token + "/verify")
		assert.Equal(t, http.StatusGone, res.Status)
		assert.Empty(t, e.backend.texts())
	})
}

func TestPagesLeaveNoDeadEnd(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		// Without a configured number, a page that knows no conversation has no button and
		// no footer; one that knows it shows its clinic number.
		res := c.get(LinkPath + "AAAAAAAAAAAAAAAAAAAAAAAA")
		assert.NotContains(t, res.Body, "sms:")
		assert.NotContains(t, res.Body, "<footer")
		res = c.get(LinkPath + e.token)
		assert.Contains(t, res.Body, `<footer class="foot">
<p>Text the clinic: <a href="sms:&#43;15550001111" class="nowrap">(555) 000-1111</a></p>
</footer>`)

		e.svc.Config.Pages = config.PagesConfig{ClinicPhone: "+15550009999", HelpURL: "https://riverside.example/help",
			PrivacyURL: "https://riverside.example/privacy", AccessibilityURL: "https://riverside.example/accessibility"}
		footer := `<ul class="foot-links"><li><a href="https://riverside.example/help" rel="noopener">Help</a></li>` +
			`<li><a href="https://riverside.example/privacy" rel="noopener">Privacy</a></li>` +
			`<li><a href="https://riverside.example/accessibility" rel="noopener">Accessibility</a></li>
</ul>`
		for name, path := range map[string]string{"unknown link": LinkPath + "AAAAAAAAAAAAAAAAAAAAAAAA", "signed out": "/chat/signed-out"} {
			res = c.get(path)
			assert.Contains(t, res.Body, `<a class="button primary" href="sms:&#43;15550009999?&amp;body=Please%20send%20me%20a%20new%20secure%20link">Text the clinic</a>`, name)
			assert.Contains(t, res.Body, "The clinic’s number is (555) 000-9999.", name)
			assert.Contains(t, res.Body, `<a href="sms:&#43;15550009999" class="nowrap">(555) 000-9999</a>`, name)
			assert.Contains(t, res.Body, footer, name)
		}
		res = c.get("/chat/signed-out?lang=es")
		assert.Contains(t, res.Body, `href="sms:&#43;15550009999?&amp;body=Por%20favor%2C%20env%C3%ADenme%20un%20enlace%20seguro%20nuevo">Enviar un mensaje a la clínica</a>`)
		assert.Contains(t, res.Body, `rel="noopener">Privacidad</a>`)
		c.get("/chat/signed-out?lang=en")

		// Pages of a conversation show its own clinic number, and the links.
		chat := c.signIn()
		for name, page := range map[string]string{"link": c.get(LinkPath + e.token).Body,
			"code": c.get(LinkPath + e.token + "/verify").Body, "chat": chat.Body} {
			assert.Contains(t, page, `<a href="sms:&#43;15550001111" class="nowrap">(555) 000-1111</a>`, name)
			assert.NotContains(t, page, "15550009999", name)
			assert.Contains(t, page, footer, name)
		}
	})
}

func TestRevokedLink(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		c.signIn()
		require.NoError(t, e.svc.Revoke(context.Background(), e.conv, testNurse))
		res := c.get(LinkPath + e.token)
		assert.Equal(t, http.StatusGone, res.Status)
		assert.Contains(t, res.Body, "This link no longer works")
		assert.Contains(t, res.Body, "ask for a new link")
		res = c.get("/chat")
		assert.Equal(t, http.StatusSeeOther, res.Status, "revoking ends the open session")
		assert.Equal(t, "/chat/signed-out", res.Location())
	})
}

func TestDateOfBirthRequiredWhenSet(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		require.NoError(t, e.svc.SetDOB(context.Background(), e.conv, "1980-02-03", testNurse))
		c := e.newClient()
		csrf, code := c.requestCode()
		page := c.get(LinkPath + e.token + "/verify")
		assert.Contains(t, page.Body, "Your date of birth")
		assert.Contains(t, page.Body, `name="dob_year"`)
		assert.Contains(t, page.Body, `<label for="dob-month">Month</label>`)

		res := c.verify(csrf, code, nil)
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "Enter your date of birth")
		assert.Zero(t, e.linkRow().FailedCodes, "a missing date is not a guess")

		res = c.verify(csrf, code, url.Values{"dob_month": {"3"}, "dob_day": {"2"}, "dob_year": {"1980"}})
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "That code or date of birth is not right.", "the date of birth was asked: it is named")
		assert.Equal(t, 1, e.linkRow().FailedCodes, "a wrong date counts")

		res = c.verify(csrf, code, url.Values{"dob_month": {"2"}, "dob_day": {"3"}, "dob_year": {"1980"}})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
		assert.Equal(t, "/chat", res.Location())
	})
}

func TestSessionIdleTimeout(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		idle := e.newClient()
		idle.signIn()
		e.clock.Advance(16 * time.Minute)
		res := idle.get("/chat")
		assert.Equal(t, http.StatusSeeOther, res.Status, "16 minutes idle: signed out")
		assert.Equal(t, "/chat/signed-out", res.Location())
		assert.Equal(t, http.StatusSeeOther, idle.get("/chat").Status, "and it stays ended")

		c := e.newClient()
		c.signIn()
		e.clock.Advance(14 * time.Minute)
		require.Equal(t, http.StatusOK, c.get("/chat").Status, "activity within 15 minutes keeps the session")
		e.clock.Advance(14 * time.Minute)
		require.Equal(t, http.StatusOK, c.get("/chat").Status)
		// Live updates are not activity.
		e.clock.Advance(10 * time.Minute)
		res = c.get("/chat/messages?after=0")
		require.Equal(t, http.StatusOK, res.Status)
		e.clock.Advance(6 * time.Minute)
		res = c.get("/chat")
		assert.Equal(t, http.StatusSeeOther, res.Status)
		assert.Equal(t, "/chat/signed-out", res.Location())
		assert.Nil(t, c.cookie("__Host-carebridge"), "the cookie is cleared")
		page := c.get("/chat/signed-out")
		assert.Equal(t, http.StatusOK, page.Status)
		assert.Contains(t, page.Body, "You are signed out")
		assert.Contains(t, page.Body, "open the link in the clinic’s text message")
	})
}

func TestSessionAbsoluteTimeout(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		c.signIn()
		var elapsed time.Duration
		for elapsed+10*time.Minute < 12*time.Hour {
			e.clock.Advance(10 * time.Minute)
			elapsed += 10 * time.Minute
			require.Equal(t, http.StatusOK, c.get("/chat/messages?after=0&active=1").Status, "at %s", elapsed)
		}
		e.clock.Advance(12*time.Hour - elapsed)
		res := c.get("/chat")
		assert.Equal(t, http.StatusSeeOther, res.Status, "12 hours at most, however active")
		assert.Equal(t, "/chat/signed-out", res.Location())
	})
}

func TestSignOut(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		res := c.post("/chat/signout", url.Values{})
		assert.Equal(t, http.StatusForbidden, res.Status, "sign-out needs the token too")
		require.Equal(t, http.StatusOK, c.get("/chat").Status)

		res = c.post("/chat/signout", url.Values{"csrf": {csrf}})
		assert.Equal(t, http.StatusSeeOther, res.Status)
		assert.Equal(t, "/chat/signed-out", res.Location())
		assert.Contains(t, res.Header.Values("Set-Cookie")[0], "__Host-carebridge=;")
		res = c.get("/chat")
		assert.Equal(t, http.StatusSeeOther, res.Status)
		ended, err := e.db.Audit.Find(context.Background(), e.conv.LoginID, e.conv.PortalID, "session ended")
		require.NoError(t, err)
		assert.Len(t, ended, 1)
	})
}

func TestChatNeedsSession(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		for _, path := range []string{"/chat", "/chat/file/1"} {
			res := c.get(path)
			assert.Equal(t, http.StatusSeeOther, res.Status, path)
			assert.Equal(t, "/chat/signed-out", res.Location())
		}
		res := c.get("/chat/messages?after=0")
		assert.Equal(t, http.StatusUnauthorized, res.Status)
		assert.Contains(t, res.Body, `"signed_out":true`)
		res = c.post("/chat/send", url.Values{"text": {"hello"}})
		assert.Equal(t, http.StatusSeeOther, res.Status)
		res = c.get("/chat/events")
		assert.Contains(t, res.Body, "event: ended")
		assert.Empty(t, e.storedMessages())
	})
}

func TestSendText(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		e.staffMessage("How are you feeling today?")
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		text := "Better, thank you.\nThe fever is gone & I <slept> well."
		res := c.post("/chat/send", url.Values{"csrf": {csrf}, "text": {"  " + strings.ReplaceAll(text, "\n", "\r\n") + "\n"}})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
		assert.Equal(t, "/chat#latest", res.Location())
		calls := e.backend.patientCalls()
		require.Len(t, calls, 1)
		assert.Equal(t, database.SecureText, calls[0].Kind)
		assert.Equal(t, text, calls[0].Text, "trimmed, line breaks kept as \\n")

		page := c.get("/chat")
		assert.Contains(t, page.Body, `<p class="text">Better, thank you.`+"\n"+`The fever is gone &amp; I &lt;slept&gt; well.</p>`)
		assert.Contains(t, page.Body, `<span class="who">You</span>`)
		assert.Contains(t, page.Body, `<span class="who">Nurse Kim — Riverside Clinic</span>`)
		assert.Less(t, strings.Index(page.Body, "How are you feeling"), strings.Index(page.Body, "Better, thank you"), "oldest first")

		res = c.post("/chat/send", url.Values{"csrf": {csrf}, "text": {" \n "}})
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "Write a message first")
		long := strings.Repeat("é", 5001)
		res = c.post("/chat/send", url.Values{"csrf": {csrf}, "text": {long}})
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "This message is too long")
		assert.Contains(t, res.Body, long, "the draft is kept")
		res = c.post("/chat/send", url.Values{"csrf": {csrf}, "text": {strings.Repeat("é", 5000)}})
		assert.Equal(t, http.StatusSeeOther, res.Status, "5000 characters are fine")
		assert.Len(t, e.storedMessages(), 3)
	})
}

// TestStaffAreShownByNameRoleAndClinic: the patient sees who wrote ("Jane, Nurse —
// Riverside Clinic"): the name the bridge gives (the staff member's Matrix display name),
// the role secure_chat.pages.staff_roles gives their Matrix ID, and the clinic; staff
// without a role by name and clinic; the photo's alt text and the live updates say the same.
func TestStaffAreShownByNameRoleAndClinic(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		ctx := context.Background()
		e.svc.Config.Pages.StaffRoles = map[string]string{"@jane:clinic.example": "Nurse"}
		jane := database.StaffActor("@jane:clinic.example")
		_, err := e.svc.AddStaffMessage(ctx, e.conv, jane, "Jane", database.SecureText, "How is the rash today?", "", nil, "$jane1")
		require.NoError(t, err)
		photo, err := e.svc.AddStaffMessage(ctx, e.conv, jane, "Jane", database.SecureImage, "rash-care.png", "image/png", webTestPNG(t, 40, 30), "$jane2")
		require.NoError(t, err)
		_, err = e.svc.AddStaffMessage(ctx, e.conv, testNurse, testStaffName, database.SecureText, "Dr. Lee will call you.", "", nil, "$kim1")
		require.NoError(t, err)

		c := e.newClient()
		page := c.signIn()
		assert.Contains(t, page.Body, `<span class="who">Jane, Nurse — Riverside Clinic</span>`)
		assert.Contains(t, page.Body, `alt="Photo from Jane, Nurse — Riverside Clinic, `)
		assert.Contains(t, page.Body, `<span class="who">Nurse Kim — Riverside Clinic</span>`, "no role configured: name and clinic")
		res := c.get(fmt.Sprintf("/chat/messages?after=%d", photo.ID-1))
		assert.Contains(t, res.Body, `"sender":"Jane, Nurse — Riverside Clinic"`)
		es := c.get("/chat?lang=es")
		assert.Contains(t, es.Body, `<span class="who">Jane, Nurse — Riverside Clinic</span>`)
		c.get("/chat?lang=en")
	})
}

func TestSendStoredButNotDelivered(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		e.backend.mu.Lock()
		e.backend.failNext = errors.New("clinic number is not linked")
		e.backend.mu.Unlock()
		res := c.post("/chat/send", url.Values{"csrf": {csrf}, "text": {"Are you there?"}})
		require.Equal(t, http.StatusSeeOther, res.Status)
		assert.Equal(t, "/chat?notice=pending#latest", res.Location())
		page := c.get("/chat?notice=pending")
		assert.Contains(t, page.Body, "Your message is saved")
		assert.Contains(t, page.Body, "Are you there?")
	})
}

func TestFormsWithoutCSRFStoreNothing(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		for _, form := range []url.Values{{"text": {"hello"}}, {"text": {"hello"}, "csrf": {""}}, {"text": {"hello"}, "csrf": {flipFirst(csrf)}}} {
			res := c.post("/chat/send", form)
			assert.Equal(t, http.StatusForbidden, res.Status)
		}
		png := webTestPNG(t, 8, 8)
		res := c.upload("", filePart{"file", "a.png", "image/png", png})
		assert.Equal(t, http.StatusForbidden, res.Status)
		res = c.upload("0123456789abcdef0123456789abcdef", filePart{"file", "a.png", "image/png", png})
		assert.Equal(t, http.StatusForbidden, res.Status)
		// The session's token from another session does not work either.
		other := e.newClient()
		other.signIn()
		res = other.post("/chat/send", url.Values{"text": {"hello"}, "csrf": {csrf}})
		assert.Equal(t, http.StatusForbidden, res.Status)

		assert.Empty(t, e.storedMessages())
		assert.Empty(t, e.backend.patientCalls())
	})
}

func TestUpload(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		png := webTestPNG(t, 40, 30)
		pdf := []byte("%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
		res := c.upload(csrf,
			filePart{"file", "", "application/octet-stream", nil}, // the empty camera input
			filePart{"file", "../Pictures/rash\u202egnp.exe.png", "application/octet-stream", png})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
		res = c.upload(csrf, filePart{"file", "../../lab results.pdf", "image/png", pdf})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)

		calls := e.backend.patientCalls()
		require.Len(t, calls, 2)
		assert.Equal(t, patientCall{Kind: database.SecureImage, Text: "rashgnp.exe.png", ContentType: "image/png", Data: png}, calls[0])
		assert.Equal(t, patientCall{Kind: database.SecureFile, Text: "lab results.pdf", ContentType: "application/pdf", Data: pdf}, calls[1])

		rows := e.storedMessages()
		require.Len(t, rows, 2)
		page := c.get("/chat")
		imgURL := fmt.Sprintf("/chat/file/%d", rows[0].ID)
		pdfURL := fmt.Sprintf("/chat/file/%d", rows[1].ID)
		assert.Contains(t, page.Body, `<a class="image-link" href="`+imgURL+`"><img src="`+imgURL+`" width="40" height="30" loading="lazy" decoding="async" alt="Photo you sent, `,
			"a small photo is its own preview")
		assert.Contains(t, page.Body, `<a href="`+pdfURL+`">lab results.pdf</a>`)

		img := c.get(imgURL)
		require.Equal(t, http.StatusOK, img.Status)
		assert.Equal(t, png, []byte(img.Body))
		assert.Equal(t, "image/png", img.Header.Get("Content-Type"))
		assert.Equal(t, `inline; filename=rashgnp.exe.png`, img.Header.Get("Content-Disposition"))
		assert.Equal(t, "nosniff", img.Header.Get("X-Content-Type-Options"))
		assert.Equal(t, "no-store", img.Header.Get("Cache-Control"))
		doc := c.get(pdfURL)
		require.Equal(t, http.StatusOK, doc.Status)
		assert.Equal(t, "application/pdf", doc.Header.Get("Content-Type"))
		assert.Equal(t, `attachment; filename="lab results.pdf"`, doc.Header.Get("Content-Disposition"))

		// The script's upload gets JSON.
		contentType, body := multipartForm(t, csrf, filePart{"file", "b.png", "image/png", png})
		res = c.request(http.MethodPost, "/chat/upload", bytes.NewReader(body), "Content-Type", contentType, "Accept", "application/json")
		assert.Equal(t, http.StatusOK, res.Status)
		assert.Contains(t, res.Body, `"id":`)
		res = c.upload(csrf)
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, res.Body, "Choose a photo or file first")
	})
}

func TestPhotosShowAsPreviews(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		ctx := context.Background()
		photo := phonePhoto(t, 4032, 3024)
		staff, err := e.svc.AddStaffMessage(ctx, e.conv, testNurse, testStaffName, database.SecureImage,
			"wound-care.jpg", "image/jpeg", photo, "$p")
		require.NoError(t, err)
		heic := append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), bytes.Repeat([]byte{1}, 64)...)
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		res := c.upload(csrf, filePart{"file", "IMG_0001.HEIC", "image/heic", heic})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
		rows := e.storedMessages()
		require.Len(t, rows, 2)
		assert.Equal(t, []int{640, 480}, []int{rows[0].Width, rows[0].Height})
		assert.True(t, rows[0].HasThumb)
		assert.False(t, rows[1].HasThumb, "no preview of what cannot be decoded")

		page := c.get("/chat")
		fileURL := fmt.Sprintf("/chat/file/%d", staff.ID)
		assert.Contains(t, page.Body, `<a class="image-link" href="`+fileURL+`"><img src="`+fileURL+`/preview" width="640" height="480" loading="lazy" decoding="async" alt="Photo from Nurse Kim — Riverside Clinic, `,
			"the page loads the preview, the original on tap")
		heicURL := fmt.Sprintf("/chat/file/%d", rows[1].ID)
		assert.Contains(t, page.Body, `<a href="`+heicURL+`">IMG_0001.HEIC</a>`, "HEIC, which most browsers do not show, is a file")
		assert.NotContains(t, page.Body, `<img src="`+heicURL)

		preview := c.get(fileURL + "/preview")
		require.Equal(t, http.StatusOK, preview.Status)
		assert.Equal(t, "image/jpeg", preview.Header.Get("Content-Type"))
		assert.Equal(t, "no-store", preview.Header.Get("Cache-Control"), "nothing of it stays on a shared phone")
		assert.Less(t, len(preview.Body), 80<<10)
		assert.Equal(t, image.Rect(0, 0, 640, 480), decodeJPEG(t, []byte(preview.Body)).Bounds())
		original := c.get(fileURL)
		require.Equal(t, http.StatusOK, original.Status)
		assert.Equal(t, photo, []byte(original.Body), "the original, untouched, on tap")
		heicFile := c.get(heicURL)
		assert.True(t, strings.HasPrefix(heicFile.Header.Get("Content-Disposition"), "attachment"))

		res = c.get("/chat/messages?after=0")
		assert.Contains(t, res.Body, `"preview_url":"`+fileURL+`/preview","width":640,"height":480,"alt":"Photo from Nurse Kim — Riverside Clinic, `)

		otherConv := e.newConversation("15557654321", "+15557654321")
		foreign, err := e.svc.AddStaffMessage(ctx, otherConv, testNurse, testStaffName, database.SecureImage,
			"other.jpg", "image/jpeg", photo, "$q")
		require.NoError(t, err)
		for _, path := range []string{fmt.Sprintf("/chat/file/%d/preview", foreign.ID), heicURL + "/preview", "/chat/file/x/preview"} {
			assert.Equal(t, http.StatusNotFound, c.get(path).Status, path)
		}
		assert.Equal(t, http.StatusSeeOther, e.newClient().get(fileURL+"/preview").Status, "no session, no preview")
	})
}

func TestUploadIsNamedByItsType(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		jpeg := phonePhoto(t, 32, 24)
		res := c.upload(csrf, filePart{"file", "report.html", "text/html", jpeg})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)

		calls := e.backend.patientCalls()
		require.Len(t, calls, 1)
		assert.Equal(t, "report.jpg", calls[0].Text, "the room gets the name of what the bytes are")
		assert.Equal(t, "image/jpeg", calls[0].ContentType)
		rows := e.storedMessages()
		require.Len(t, rows, 1)
		stored, err := e.svc.open(e.conv, rows[0])
		require.NoError(t, err)
		assert.Equal(t, "report.jpg", stored.Text, "stored under that name")
		file := c.get(fmt.Sprintf("/chat/file/%d", rows[0].ID))
		require.Equal(t, http.StatusOK, file.Status)
		assert.Equal(t, "image/jpeg", file.Header.Get("Content-Type"))
		assert.Equal(t, "inline; filename=report.jpg", file.Header.Get("Content-Disposition"))

		// A file stored under its sender's name before names followed types is served
		// under the name of its type too.
		sess := &Session{Conversation: e.conv, Hash: strings.Repeat("0", 64)}
		old, err := e.svc.AddPatientMessage(context.Background(), sess, database.SecureImage, "scan.html", "image/jpeg", jpeg)
		require.NoError(t, err)
		file = c.get(fmt.Sprintf("/chat/file/%d", old.ID))
		require.Equal(t, http.StatusOK, file.Status)
		assert.Equal(t, "inline; filename=scan.jpg", file.Header.Get("Content-Disposition"))
	})
}

func TestUploadRefusesOtherTypes(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		for _, data := range [][]byte{
			[]byte("<html><script>alert(document.cookie)</script></html>"),
			[]byte("GIF89a\x01\x00\x01\x00"),
			[]byte("<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>"),
			[]byte("MZ\x90\x00 this is an exe"),
		} {
			res := c.upload(csrf, filePart{"file", "photo.png", "image/png", data})
			assert.Equal(t, http.StatusUnsupportedMediaType, res.Status)
			assert.Contains(t, res.Body, "This file cannot be sent")
		}
		contentType, body := multipartForm(t, csrf, filePart{"file", "photo.png", "image/png", []byte("<html></html>")})
		res := c.request(http.MethodPost, "/chat/upload", bytes.NewReader(body), "Content-Type", contentType, "Accept", "application/json")
		assert.Equal(t, http.StatusUnsupportedMediaType, res.Status)
		assert.Contains(t, res.Body, `"error":"This file cannot be sent.`)
		assert.Empty(t, e.storedMessages())
		assert.Empty(t, e.backend.patientCalls())
	})
}

func TestUploadTooLarge(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		big := make([]byte, 25<<20)
		copy(big, webTestPNG(t, 4, 4))

		res := c.upload(csrf, filePart{"file", "big.png", "image/png", big})
		assert.Equal(t, http.StatusRequestEntityTooLarge, res.Status, "known length")
		assert.Contains(t, res.Body, "This file is too large. The limit is 20 MB.")

		// Chunked, so the length is only found while reading.
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			_ = mw.WriteField("csrf", csrf)
			part, _ := mw.CreateFormFile("file", "big.png")
			_, _ = part.Write(big)
			_ = mw.Close()
			_ = pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/chat/upload", pr)
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		res = c.do(req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, res.Status, "streamed")

		// Exactly the limit, in a form body over it by the multipart overhead only: fine.
		limit := make([]byte, 20<<20)
		copy(limit, webTestPNG(t, 4, 4))
		res = c.upload(csrf, filePart{"file", "limit.png", "image/png", limit})
		assert.Equal(t, http.StatusSeeOther, res.Status)
		assert.Len(t, e.storedMessages(), 1, "only the file within the limit is stored")
		assert.Len(t, e.backend.patientCalls(), 1)
	})
}

func TestStaffMessageIsEscaped(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		_, err := e.svc.AddStaffMessage(context.Background(), e.conv, testNurse, `Dr <b>Evil</b>`, database.SecureText,
			"<script>alert(1)</script>\n<img src=x onerror=alert(1)>", "", nil, "$x")
		require.NoError(t, err)
		_, err = e.svc.AddStaffMessage(context.Background(), e.conv, testNurse, testStaffName, database.SecureFile,
			`"><script>alert(2)</script>.pdf`, "application/pdf", []byte("%PDF-1.4"), "$y")
		require.NoError(t, err)
		c := e.newClient()
		page := c.signIn()
		assert.Contains(t, page.Body, "&lt;script&gt;alert(1)&lt;/script&gt;\n&lt;img src=x onerror=alert(1)&gt;")
		assert.Contains(t, page.Body, "Dr &lt;b&gt;Evil&lt;/b&gt;")
		assert.NotContains(t, page.Body, "<script>alert")
		assert.NotContains(t, page.Body, "<img src=x")
		assert.NotContains(t, page.Body, "<b>Evil")
		assert.Contains(t, page.Body, "&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;.pdf")
		assert.Equal(t, 1, strings.Count(page.Body, "<script"), "only the page's own script")
		assert.Contains(t, page.Body, `<script src="/assets/securechat/chat.js?v=`)

		res := c.get("/chat/messages?after=0")
		assert.Equal(t, "application/json; charset=utf-8", res.Header.Get("Content-Type"))
		assert.Contains(t, res.Body, `\u003cscript\u003ealert(1)`)
	})
}

func TestMessagesJSON(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		first := e.staffMessage("First")
		c := e.newClient()
		c.signIn()
		second := e.staffMessage("Second")
		res := c.get(fmt.Sprintf("/chat/messages?after=%d", first.ID))
		require.Equal(t, http.StatusOK, res.Status)
		assert.Contains(t, res.Body, fmt.Sprintf(`{"id":%d,"from_patient":false,"sender":"Nurse Kim — Riverside Clinic","kind":"text","text":"Second","time":"`, second.ID))
		assert.NotContains(t, res.Body, "First")
		assert.Contains(t, res.Body, `"more":false`)
		res = c.get("/chat/messages?after=x")
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Contains(t, e.backend.reads, second.ID, "reading marks staff messages read")
	})
}

func TestFileOfAnotherConversationIsNotFound(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		ctx := context.Background()
		own, err := e.svc.AddStaffMessage(ctx, e.conv, testNurse, testStaffName, database.SecureImage, "care.png", "image/png", webTestPNG(t, 4, 4), "$a")
		require.NoError(t, err)
		otherConv := e.newConversation("15557654321", "+15557654321")
		foreign, err := e.svc.AddStaffMessage(ctx, otherConv, testNurse, testStaffName, database.SecureImage, "other.png", "image/png", webTestPNG(t, 4, 4), "$b")
		require.NoError(t, err)
		text := e.staffMessage("just text")

		c := e.newClient()
		c.signIn()
		assert.Equal(t, http.StatusOK, c.get(fmt.Sprintf("/chat/file/%d", own.ID)).Status)
		for _, path := range []string{
			fmt.Sprintf("/chat/file/%d", foreign.ID),
			fmt.Sprintf("/chat/file/%d", text.ID),
			"/chat/file/999999", "/chat/file/0", "/chat/file/-1", "/chat/file/abc",
		} {
			res := c.get(path)
			assert.Equal(t, http.StatusNotFound, res.Status, path)
			assert.NotContains(t, res.Body, "other.png")
		}
	})
}

func TestStaffFileTypes(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		ctx := context.Background()
		svg, err := e.svc.AddStaffMessage(ctx, e.conv, testNurse, testStaffName, database.SecureImage, "chart.svg", "image/svg+xml",
			[]byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "$s")
		require.NoError(t, err)
		c := e.newClient()
		c.signIn()
		res := c.get(fmt.Sprintf("/chat/file/%d", svg.ID))
		require.Equal(t, http.StatusOK, res.Status)
		assert.True(t, strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment"), "no SVG shown inline")
		assert.Equal(t, expectedCSPHeader, res.Header.Get("Content-Security-Policy"))
	})
}

func TestSecurityHeaders(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		check := func(name string, res *webResult, page bool) {
			t.Helper()
			h := res.Header
			assert.Equal(t, expectedCSPHeader, h.Get("Content-Security-Policy"), name)
			assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"), name)
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), name)
			assert.Equal(t, "DENY", h.Get("X-Frame-Options"), name)
			assert.Equal(t, "max-age=31536000", h.Get("Strict-Transport-Security"), name)
			if page {
				assert.Equal(t, "no-store", h.Get("Cache-Control"), name)
			}
		}
		link := c.get(LinkPath + e.token)
		check("link", link, true)
		assert.Contains(t, link.Body, `<html lang="en">`)
		setCookie := link.Header.Get("Set-Cookie")
		assert.Regexp(t, `^__Host-carebridge-csrf=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; Secure; SameSite=Strict$`, setCookie)
		assert.NotContains(t, link.Body, "style=", "no inline styles (CSP)")
		assert.NotContains(t, link.Body, "<script", "the link page needs no script")

		csrf, code := c.requestCode()
		check("code", c.get(LinkPath+e.token+"/verify"), true)
		res := c.verify(csrf, code, nil)
		require.Equal(t, http.StatusSeeOther, res.Status)
		check("verify", res, true)
		var session string
		for _, v := range res.Header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "__Host-carebridge=") {
				session = v
			}
		}
		assert.Regexp(t, `^__Host-carebridge=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; Secure; SameSite=Strict$`, session,
			"a browser-session cookie: no Max-Age, Expires or Domain")

		chat := c.get("/chat")
		check("chat", chat, true)
		assert.NotContains(t, chat.Body, "style=")
		assert.NotRegexp(t, `<script>|<script [^s]|\son[a-z]+="`, chat.Body, "no inline script or handlers")
		assert.NotContains(t, chat.Body, "http://", "no third-party assets")
		assert.NotContains(t, chat.Body, "https://")
		check("messages", c.get("/chat/messages?after=0"), true)
		check("signed out", c.get("/chat/signed-out"), true)
		check("unknown", c.get(LinkPath+"BBBBBBBBBBBBBBBBBBBBBBBBBB"), true)

		for name, contentType := range map[string]string{"chat.css": "text/css; charset=utf-8", "chat.js": "text/javascript; charset=utf-8",
			"code.js": "text/javascript; charset=utf-8"} {
			asset := c.get(assetPrefix + name + "?v=" + e.web.assetVersion)
			require.Equal(t, http.StatusOK, asset.Status, name)
			check(name, asset, false)
			assert.Equal(t, contentType, asset.Header.Get("Content-Type"))
			assert.Equal(t, "public, max-age=31536000, immutable", asset.Header.Get("Cache-Control"))
			again := c.get(assetPrefix+name, "If-None-Match", asset.Header.Get("ETag"))
			assert.Equal(t, http.StatusNotModified, again.Status)
		}
		assert.Equal(t, http.StatusNotFound, c.get(assetPrefix+"layout.html").Status)
		assert.Equal(t, http.StatusNotFound, c.get(assetPrefix+"templates%2Flayout.html").Status)
	})
}

// TestCodePagePreloadsOnlyWhereSet: the code page, where the patient waits for the texted code
// and types it, names WebOptions.CodePagePreloads as low-priority preloads with their SRI
// values (issue 18's spike sets them to its page's wasm and modules); without them (default
// builds) no page has a preload, and the policy is the same either way.
func TestCodePagePreloadsOnlyWhereSet(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		for name, path := range map[string]string{"link": LinkPath + e.token, "code": LinkPath + e.token + "/verify"} {
			res := c.get(path)
			require.Equal(t, http.StatusOK, res.Status, name)
			assert.NotContains(t, res.Body, "preload", name)
		}

		e.web.opts.CodePagePreloads = []Preload{
			{URL: "/_carebridge/e2ee/assets/page.0123456789abcdef.mjs", Integrity: "sha384-AAAA+/BB", Module: true},
			{URL: "/_carebridge/e2ee/assets/crypto.fedcba9876543210.wasm", Integrity: "sha384-CCCC+/DD"},
		}
		code := c.get(LinkPath + e.token + "/verify")
		require.Equal(t, http.StatusOK, code.Status)
		assert.Contains(t, code.Body, `<link rel="modulepreload" href="/_carebridge/e2ee/assets/page.0123456789abcdef.mjs" integrity="sha384-AAAA&#43;/BB" fetchpriority="low">`)
		assert.Contains(t, code.Body, `<link rel="preload" href="/_carebridge/e2ee/assets/crypto.fedcba9876543210.wasm" as="fetch" crossorigin integrity="sha384-CCCC&#43;/DD" fetchpriority="low">`)
		assert.Equal(t, expectedCSPHeader, code.Header.Get("Content-Security-Policy"), "the policy is unchanged")
		head, _, _ := strings.Cut(code.Body, "</head>")
		assert.Equal(t, 2, strings.Count(head, "preload"), "in the head, once each")
		link := c.get(LinkPath + e.token)
		assert.NotContains(t, link.Body, "preload", "the link page (fetched by link previewers too) preloads nothing")
	})
}

func TestInsecureCookiesForLoopback(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	c := e.newClient()
	link := c.get(LinkPath + e.token)
	assert.Regexp(t, `^carebridge-csrf=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict$`, link.Header.Get("Set-Cookie"))
	assert.Empty(t, link.Header.Get("Strict-Transport-Security"), "no HSTS over http")
	csrf, code := c.requestCode()
	res := c.verify(csrf, code, nil)
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Regexp(t, `^carebridge=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict$`, res.Header.Get("Set-Cookie"))
	assert.Equal(t, http.StatusOK, c.get("/chat").Status)
}

func TestLanguage(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		page := c.get(LinkPath+e.token, "Accept-Language", "es")
		assert.Contains(t, page.Body, `<html lang="es">`)
		assert.Contains(t, page.Body, "Envíenme un código")
		assert.Contains(t, page.Body, `<a class="lang" href="/s/`+e.token+`?lang=en" hreflang="en" lang="en">English</a>`)

		page = c.get(LinkPath+e.token+"?lang=en", "Accept-Language", "es")
		assert.Contains(t, page.Body, `<html lang="en">`)
		assert.Contains(t, page.Body, "Español")
		page = c.get(LinkPath+e.token, "Accept-Language", "es")
		assert.Contains(t, page.Body, `<html lang="en">`, "the choice is remembered in a cookie")

		fresh := e.newClient()
		page = fresh.get(LinkPath+e.token, "Accept-Language", "fr-FR,fr;q=0.9")
		assert.Contains(t, page.Body, `<html lang="en">`, "the configured default")
		e.svc.Config.Language = "es"
		page = fresh.get(LinkPath+e.token, "Accept-Language", "fr-FR,fr;q=0.9")
		assert.Contains(t, page.Body, `<html lang="es">`)
		e.svc.Config.Language = "en"

		// The code is texted in the page's language, and the chat speaks it.
		csrf := csrfOf(t, fresh.get(LinkPath+e.token+"?lang=es").Body)
		require.Equal(t, http.StatusSeeOther, fresh.post(LinkPath+e.token+"/code", url.Values{"csrf": {csrf}}).Status)
		code := e.backend.lastCode(t)
		assert.Equal(t, CodeText("es", testClinic, code, e.host(), 10*time.Minute), e.backend.texts()[0])
		require.Equal(t, http.StatusSeeOther, fresh.verify(csrf, code, nil).Status)
		chat := fresh.get("/chat")
		assert.Contains(t, chat.Body, "Sus mensajes")
		assert.Contains(t, chat.Body, "Cerrar sesión")
		for _, body := range []string{page.Body, chat.Body} {
			assert.NotContains(t, body, "[missing:")
		}
	})
}

// sseReader reads events from the chat's event stream.
type sseReader struct {
	t      *testing.T
	lines  chan string
	cancel context.CancelFunc
}

func (c *webClient) events(t *testing.T) *sseReader {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.e.srv.URL+"/chat/events", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	r := &sseReader{t: t, lines: make(chan string, 100), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(r.lines)
		scanner := bufio.NewScanner(resp.Body)
		for scanner.Scan() {
			r.lines <- scanner.Text()
		}
	}()
	t.Cleanup(cancel)
	return r
}

// next returns the next non-empty line.
func (r *sseReader) next() (string, bool) {
	r.t.Helper()
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				return "", false
			}
			if line != "" {
				return line, true
			}
		case <-time.After(10 * time.Second):
			r.t.Fatal("no event within 10 s")
		}
	}
}

func (r *sseReader) waitFor(want string) {
	r.t.Helper()
	for {
		line, ok := r.next()
		require.True(r.t, ok, "stream closed before %q", want)
		if line == want {
			return
		}
	}
}

func TestLiveUpdates(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		e.web.keepalive = 100 * time.Millisecond
		c := e.newClient()
		c.signIn()
		stream := c.events(t)
		stream.waitFor(": open")
		stream.waitFor(": keepalive")
		msg := e.staffMessage("The doctor will call you at 3.")
		stream.waitFor("event: update")
		line, _ := stream.next()
		assert.Equal(t, "data: update", line, "the event carries no content")
		res := c.get(fmt.Sprintf("/chat/messages?after=%d", msg.ID-1))
		assert.Contains(t, res.Body, "The doctor will call you at 3.")

		// Idle for 16 minutes with the page open: the stream says so and ends.
		e.clock.Advance(16 * time.Minute)
		stream.waitFor("event: ended")
		line, _ = stream.next()
		assert.Equal(t, "data: ended", line)
		_, open := stream.next()
		assert.False(t, open, "the stream closes")
	})
}

func TestLiveUpdatesEndOnRevoke(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		c.signIn()
		stream := c.events(t)
		stream.waitFor(": open")
		require.NoError(t, e.svc.Revoke(context.Background(), e.conv, testNurse))
		stream.waitFor("event: ended")
	})
}

func TestGetOnPostRoutesRedirects(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{})
	c := e.newClient()
	for path, want := range map[string]string{
		"/chat/send": "/chat", "/chat/upload": "/chat", "/chat/signout": "/chat", LinkPath + e.token + "/code": LinkPath + e.token,
	} {
		res := c.get(path)
		assert.Equal(t, http.StatusSeeOther, res.Status, path)
		assert.Equal(t, want, res.Location(), path)
	}
	assert.Empty(t, e.backend.texts())
}

func TestPagesReadable(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{})
	page := e.newClient().get(LinkPath + e.token)
	assert.Contains(t, page.Body, `<meta name="viewport" content="width=device-width, initial-scale=1">`)
	chat := e.newClient().signIn()
	// Every input but the hidden ones has a label; the file inputs' labels are the page's
	// own buttons, in its language.
	assert.Contains(t, chat.Body, `<label for="text">`)
	for id, label := range map[string]string{"file-camera": "Take a photo", "file-choose": "Choose a photo or PDF"} {
		assert.Contains(t, chat.Body, `<label for="`+id+`" class="button secondary">`+label+`</label>`)
		assert.Contains(t, chat.Body, `id="`+id+`" class="visually-hidden"`)
	}
	// The list keeps its list semantics; the live region is around it.
	assert.Contains(t, chat.Body, `<div class="log" role="log" aria-live="polite" aria-labelledby="chat-heading">
<ol id="messages" class="messages" `)
	assert.Contains(t, chat.Body, `capture="environment"`)
	assert.Contains(t, chat.Body, `accept="image/*,application/pdf"`)
	assert.Contains(t, chat.Body, `enctype="multipart/form-data"`)
	// Without script, the page reloads itself for new messages, and a link does it at once.
	assert.Regexp(t, `<noscript><meta http-equiv="refresh" content="120; url=/chat\?auto=1&amp;r=[A-Za-z0-9_-]{8}#latest"></noscript>`, chat.Body)
	assert.Regexp(t, `<noscript><p class="check"><a href="/chat\?r=[A-Za-z0-9_-]{8}#latest" id="check">Check for new messages</a></p></noscript>`, chat.Body)
	assert.NotContains(t, page.Body, "refresh", "only the chat page")
}

// TestNoScriptRefreshIsNotActivity: the chat page reloading itself (no script) shows new
// messages but does not keep the session open; its last reload before the idle logoff
// comes just after it, and lands on the signed-out page.
func TestNoScriptRefreshIsNotActivity(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		c.signIn()
		refresh := regexp.MustCompile(`<meta http-equiv="refresh" content="(\d+); url=/chat\?auto=1&amp;r=[A-Za-z0-9_-]{8}#latest">`)
		for minute := 2; minute <= 14; minute += 2 {
			e.clock.Advance(2 * time.Minute)
			page := c.get("/chat?auto=1")
			require.Equal(t, http.StatusOK, page.Status, "minute %d", minute)
			m := refresh.FindStringSubmatch(page.Body)
			require.NotNil(t, m, "minute %d", minute)
			want := "120"
			if minute == 14 {
				want = "62" // the session ends at minute 15: the next reload comes then
			}
			assert.Equal(t, want, m[1], "minute %d", minute)
		}
		e.staffMessage("Your results are in.")
		e.clock.Advance(62 * time.Second)
		res := c.get("/chat?auto=1")
		assert.Equal(t, http.StatusSeeOther, res.Status, "the reloads did not keep the session open")
		assert.Equal(t, "/chat/signed-out", res.Location())
	})
}

// TestCrossSitePostsAreRefused: a form another site's page submits (the browser says so in
// Sec-Fetch-Site, or its Origin is not the clinic's) is refused before anything happens,
// even with a valid CSRF token; the clinic's own pages still work.
func TestCrossSitePostsAreRefused(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		page := c.get(LinkPath + e.token)
		require.Equal(t, http.StatusOK, page.Status)
		form := url.Values{"csrf": {csrfOf(t, page.Body)}}
		for _, header := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Origin", "https://evil.example"},
		} {
			res := c.post(LinkPath+e.token+"/code", form, header...)
			assert.Equal(t, http.StatusForbidden, res.Status, header)
			assert.Contains(t, res.Body, "Please try again", header)
		}
		assert.Empty(t, e.backend.texts(), "no code was texted")
		res := c.post(LinkPath+e.token+"/code", form, "Sec-Fetch-Site", "same-origin", "Origin", e.srv.URL)
		assert.Equal(t, http.StatusSeeOther, res.Status, "the clinic's own page may post")
		assert.Len(t, e.backend.texts(), 1)
	})
}

func TestTimesAreInTheClinicsZone(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{})
	honolulu, err := time.LoadLocation("Pacific/Honolulu")
	require.NoError(t, err)
	e.web.opts.Location = honolulu
	msg := e.staffMessage("Please call us back today.")
	page := e.newClient().signIn()
	want := formatTime(langEnglish, msg.CreatedAt, honolulu)
	assert.Contains(t, page.Body, `">`+want+`</time>`, "Honolulu time, whatever the server's zone")
	assert.NotEqual(t, formatTime(langEnglish, msg.CreatedAt, time.UTC), want)
	assert.Contains(t, page.Body, `<time datetime="`+msg.CreatedAt.UTC().Format(time.RFC3339)+`">`, "the script gets the instant")
}

func TestWebAppManifestAndIcons(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{})
	c := e.newClient()
	page := c.get(LinkPath + e.token)
	assert.Contains(t, page.Body, `<link rel="manifest" href="/chat/app.webmanifest?lang=en">`)
	assert.Contains(t, page.Body, `<link rel="icon" href="/assets/securechat/icon.svg?v=`+e.web.assetVersion+`" type="image/svg+xml">`)
	assert.Contains(t, page.Body, `<link rel="apple-touch-icon" href="/assets/securechat/icon-180.png?v=`+e.web.assetVersion+`">`)

	res := c.get("/chat/app.webmanifest?lang=es")
	require.Equal(t, http.StatusOK, res.Status)
	assert.Equal(t, "application/manifest+json; charset=utf-8", res.Header.Get("Content-Type"))
	var manifest struct {
		Name, ShortName, StartURL, Scope, Display, Lang string
		Icons                                           []struct{ Src, Sizes, Type, Purpose string }
	}
	require.NoError(t, json.Unmarshal([]byte(strings.NewReplacer(`"short_name"`, `"shortname"`, `"start_url"`, `"starturl"`).Replace(res.Body)), &manifest))
	assert.Equal(t, "Riverside Clinic: Mensajes seguros", manifest.Name)
	assert.Equal(t, "Riverside Clinic", manifest.ShortName)
	assert.Equal(t, "/chat", manifest.StartURL)
	assert.Equal(t, "standalone", manifest.Display)
	assert.Equal(t, "es", manifest.Lang)
	require.Len(t, manifest.Icons, 3)
	for _, icon := range manifest.Icons {
		got := c.get(icon.Src)
		require.Equal(t, http.StatusOK, got.Status, icon.Src)
		assert.Equal(t, icon.Type, got.Header.Get("Content-Type"))
		if icon.Type != "image/png" {
			continue
		}
		img, err := png.Decode(strings.NewReader(got.Body))
		require.NoError(t, err)
		assert.Equal(t, icon.Sizes, fmt.Sprintf("%dx%d", img.Bounds().Dx(), img.Bounds().Dy()))
		size := img.Bounds().Dx()
		assert.Equal(t, color.RGBAModel.Convert(brandBlue), color.RGBAModel.Convert(img.At(2, 2)), "blue around the lock")
		r, g, b, _ := img.At(size/2, size*70/100).RGBA()
		assert.Equal(t, []uint32{0xffff, 0xffff, 0xffff}, []uint32{r, g, b}, "the lock's body is white")
		r, _, _, _ = img.At(size/2, size*30/100).RGBA()
		assert.Less(t, r, uint32(0x4000), "inside the shackle is blue")
	}
	assert.Contains(t, c.get("/assets/securechat/icon.svg").Body, `<svg xmlns="http://www.w3.org/2000/svg"`)
}
