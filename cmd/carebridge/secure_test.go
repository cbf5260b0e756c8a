package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// matrixLogin logs a user in with a password (a separate device) and returns its token.
func matrixLogin(t *testing.T, hsURL, user, password string) string {
	body, _ := json.Marshal(map[string]any{"type": "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user}, "password": password})
	resp, err := http.Post(hsURL+"/_matrix/client/v3/login", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.AccessToken)
	return out.AccessToken
}

func matrixGet(t *testing.T, hsURL, token, path string, out any) {
	req, err := http.NewRequest(http.MethodGet, hsURL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

func testPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for x := range 320 {
		for y := range 240 {
			img.Set(x, y, color.RGBA{R: 200, G: uint8(y), B: uint8(x / 2), A: 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// TestSecureModeEndToEnd: staff switch a conversation to secure and write; the patient's
// alert SMS carries no word of it; the patient opens the link in Chromium (the GET sends
// nothing), taps for a code, reads it from the fake Twilio, enters it, reads the message,
// replies with text and a photo; the nurse (nio) decrypts both, and the patient's read
// receipt appears in the room.
func TestSecureModeEndToEnd(t *testing.T) {
	eachHomeserver(t, func(t *testing.T, kind string) { runSecureModeEndToEnd(t, kind, true) })
}

// TestSecureModeWithoutJavaScript: the same flow with JavaScript off in the browser
// (plain form posts and server rendering).
func TestSecureModeWithoutJavaScript(t *testing.T) {
	eachDB(t, func(t *testing.T, kind string) { runSecureModeEndToEnd(t, kind, false) })
}

func runSecureModeEndToEnd(t *testing.T, kind string, scripts bool) {
	if testing.Short() {
		t.Skip("starts Dendrite, the bridge, matrix-nio and Chromium")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	_, err := testenv.ChromiumPath()
	testenv.RequireDep(t, testenv.DepChromium, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, kind)
	_, err = e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Hi, I got a letter about my lab results. What do they mean?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)

	_, _, err = nurse.Send(ctx, roomID, "!sms secure")
	require.NoError(t, err)
	notice(t, ctx, nurse, "Secure mode")
	token := matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1")
	var state struct {
		Mode string `json:"mode"`
	}
	matrixGet(t, e.hs.URL(), token, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/state/com.carebridge.conversation", &state)
	assert.Equal(t, "secure", state.Mode, "the room state shows the mode")
	var topic struct {
		Topic string `json:"topic"`
	}
	matrixGet(t, e.hs.URL(), token, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/state/m.room.topic", &topic)
	assert.Contains(t, topic.Topic, "secure conversation with (555) 123-4567")

	const phi = "Your potassium is slightly high at 5.4. Please repeat the blood test this week."
	before := len(e.fake.Messages())
	staffEvent, sentAt, err := nurse.Send(ctx, roomID, phi)
	require.NoError(t, err)
	alert, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "secure message")
	})
	require.NoError(t, err)
	alertLatency := alert.ReceivedAt.Sub(sentAt)
	link := regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]+`).FindString(alert.Body)
	require.NotEmpty(t, link, alert.Body)
	assert.Equal(t, "Example Clinic: you have a new secure message. Open it here: "+link, alert.Body, "a fixed template")
	for _, word := range []string{"potassium", "5.4", "blood", "test"} {
		assert.NotContains(t, strings.ToLower(alert.Body), word, "no PHI on SMS")
	}
	for _, m := range e.fake.Messages()[before:] {
		assert.NotContains(t, m.Body, "potassium", "the staff message itself is never texted")
	}

	browser := testenv.NewBrowser(t, scripts)
	do := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, acancel := context.WithTimeout(browser, 30*time.Second)
		defer acancel()
		require.NoError(t, chromedp.Do(actx, actions...))
	}
	codesBefore := len(e.fake.Messages())
	do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("send-code")))
	assert.Len(t, e.fake.Messages(), codesBefore, "opening the link sends nothing")
	do(chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
	codeSMS, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "your code is")
	})
	require.NoError(t, err)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(codeSMS.Body)
	require.NotEmpty(t, code)
	do(chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("messages")))
	text, err := chromedp.Run(browser, chromedp.TextContent(chromedp.ID("messages")))
	require.NoError(t, err)
	assert.Contains(t, text, phi, "the patient reads the staff message")

	// The patient read it: the ghost's read receipt on the staff message.
	ghost := e.patientGhost(t, ctx, patient)
	_, err = nurse.WaitEvent(ctx, func(ev testenv.AgentEvent) bool {
		return ev.EventType == "m.receipt.m.read" && ev.EventID == staffEvent && ev.Sender == ghost
	})
	require.NoError(t, err, "read receipt from the patient's ghost")

	// The patient replies with text, then a photo.
	const reply = "Thank you. Can I do the test at the clinic on Friday morning?"
	do(chromedp.SendKeys(chromedp.ID("text"), reply))
	clicked := time.Now()
	do(chromedp.Click(chromedp.ID("send")))
	got, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "🔒 "+reply })
	require.NoError(t, err)
	replyLatency := got.ReceivedAt().Sub(clicked)
	assert.True(t, got.Encrypted)
	photo := testPNG(t)
	photoPath := filepath.Join(t.TempDir(), "arm.png")
	require.NoError(t, os.WriteFile(photoPath, photo, 0o600))
	do(chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{photoPath}), chromedp.Click(chromedp.ID("upload")))
	img, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.MsgType == "m.image" && m.RoomID == roomID })
	require.NoError(t, err)
	assert.Equal(t, sha256Hex(photo), img.MediaSHA256, "the nurse decrypts the exact photo")
	assert.True(t, img.Encrypted && img.MediaEncrypted)
	assert.Equal(t, "image/png", img.MimeType)
	// In secure mode attachments are bounded by the web chat, not by MMS: a 6 MB PDF that
	// SMS mode refuses reaches the patient's chat page.
	report := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("lab report page "), 6<<16)...)
	_, err = nurse.SendFile(ctx, roomID, "lab-report.pdf", "application/pdf", report)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		nctx, ncancel := context.WithTimeout(browser, 10*time.Second)
		defer ncancel()
		if chromedp.Do(nctx, chromedp.Navigate(e.br.URL()+"/chat")) != nil {
			return false
		}
		text, err := chromedp.Run(nctx, chromedp.TextContent(chromedp.ID("messages")))
		return err == nil && strings.Contains(text, "lab-report.pdf")
	}, 30*time.Second, 500*time.Millisecond, "the staff PDF shows in the secure chat")
	assert.False(t, slices.ContainsFunc(e.fake.Messages(), func(m testenv.FakeMessage) bool { return len(m.MediaURLs) > 0 }),
		"nothing was sent as MMS")

	t.Logf("[%s, scripts %v] staff message → alert SMS at the fake: %v; patient's send → decrypted at nio: %v",
		kind, scripts, alertLatency, replyLatency)

	// Nothing of the conversation reached the bridge's log.
	log := e.br.Log()
	for _, s := range []string{"potassium", "Friday morning", code} {
		assert.NotContains(t, log, s)
	}
	assert.False(t, slices.ContainsFunc(e.fake.Messages(), func(m testenv.FakeMessage) bool { return strings.Contains(m.Body, "Friday") }))
}
