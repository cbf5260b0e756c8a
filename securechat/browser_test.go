package securechat

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

func browserRun(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

func browserValue[T any](t *testing.T, ctx context.Context, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	require.NoError(t, err)
	return v
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel chromedp.CSS, want string) string {
	t.Helper()
	var text string
	require.Eventually(t, func() bool {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		text, err = chromedp.Run(tctx, chromedp.TextContent(sel))
		return err == nil && strings.Contains(text, want)
	}, 20*time.Second, 100*time.Millisecond, "%q never showed %q", sel, want)
	return text
}

// screenshot writes docs/screenshots/<name> when CAREBRIDGE_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("CAREBRIDGE_SCREENSHOTS") != "1" {
		return
	}
	png := browserValue(t, ctx, chromedp.CaptureScreenshot())
	dir := filepath.Join("..", "docs", "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	t.Logf("Wrote %s", filepath.Join(dir, name))
}

func (e *webEnv) liveSubscribers() int {
	e.svc.Hub.mu.Lock()
	defer e.svc.Hub.mu.Unlock()
	return len(e.svc.Hub.subs[e.conv.LoginID+"/"+e.conv.PortalID])
}

const (
	browserStaffFirst  = "Hello Maria, this is Nurse Kim from Riverside Clinic. Could you send us a photo of the rash on your arm?"
	browserPatientText = "It started on Monday.\nIt itches most at night."
	browserStaffLive   = "Thank you. Dr. Patel has seen the photo and will call you this afternoon."
)

// browserSignIn opens the link as a patient does, taps "Text me a code" and types it.
func browserSignIn(t *testing.T, ctx context.Context, e *webEnv, shots bool) {
	t.Helper()
	browserRun(t, ctx, chromedp.Navigate(e.linkURL), chromedp.WaitVisible(chromedp.ID("send-code")))
	assert.Contains(t, browserValue(t, ctx, chromedp.TextContent(chromedp.CSS("h1"))), "Riverside Clinic sent you a secure message")
	assert.Empty(t, e.backend.texts(), "opening the link sends nothing")
	if shots {
		screenshot(t, ctx, "securechat-link.png")
	}
	browserRun(t, ctx, chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
	if shots {
		screenshot(t, ctx, "securechat-code.png")
	}
	code := e.backend.lastCode(t)
	browserRun(t, ctx, chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("messages")))
	waitText(t, ctx, "#messages", browserStaffFirst)
}

func writeTestPNG(t *testing.T) (string, []byte) {
	data := webTestPNG(t, 480, 320)
	path := filepath.Join(t.TempDir(), "rash-arm.png")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path, data
}

func assertDelivered(t *testing.T, e *webEnv, png []byte) {
	t.Helper()
	calls := e.backend.patientCalls()
	require.Len(t, calls, 2)
	assert.Equal(t, patientCall{Kind: database.SecureText, Text: browserPatientText}, calls[0])
	assert.Equal(t, database.SecureImage, calls[1].Kind)
	assert.Equal(t, "rash-arm.png", calls[1].Text)
	assert.Equal(t, "image/png", calls[1].ContentType)
	assert.Equal(t, png, calls[1].Data, "the exact bytes")
}

func TestBrowserFlowWithJavaScript(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	e.staffMessage(browserStaffFirst)
	ctx := testenv.NewBrowser(t, true)
	browserSignIn(t, ctx, e, true)

	// The script subscribes to live updates.
	require.Eventually(t, func() bool { return e.liveSubscribers() == 1 }, 10*time.Second, 50*time.Millisecond)

	// From here the page must not reload, for a text or a photo: a marker on window shows it.
	browserRun(t, ctx, chromedp.Evaluate[chromedp.Void](`window.carebridgeMarker = 42`))
	browserRun(t, ctx, chromedp.SendKeys(chromedp.ID("text"), browserPatientText), chromedp.Click(chromedp.ID("send")))
	text := waitText(t, ctx, "#messages li.mine", "It itches most at night.")
	assert.Contains(t, text, "You")
	html := browserValue(t, ctx, chromedp.InnerHTML(chromedp.CSS("#messages li.mine .text")))
	assert.Equal(t, "It started on Monday.\nIt itches most at night.", html, "line breaks kept")
	assert.Equal(t, 42, browserValue(t, ctx, chromedp.Evaluate[int](`window.carebridgeMarker`)), "the text went without a reload")
	assert.Empty(t, browserValue(t, ctx, chromedp.Value(chromedp.ID("text"))), "the box is emptied for the next text")
	require.Len(t, e.backend.patientCalls(), 1)
	require.Eventually(t, func() bool { return e.liveSubscribers() == 1 }, 10*time.Second, 50*time.Millisecond)
	pngPath, png := writeTestPNG(t)
	browserRun(t, ctx, chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{pngPath}), chromedp.Click(chromedp.ID("upload")),
		chromedp.WaitVisible(chromedp.CSS("#messages li.mine img")))
	waitText(t, ctx, "#upload-status", "Sent.")
	require.Eventually(t, func() bool {
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('#messages li.mine img').naturalWidth`))
		return err == nil && width == 480
	}, 10*time.Second, 100*time.Millisecond, "the uploaded image shows")
	assertDelivered(t, e, png)

	// Live update: a staff message appears without a reload.
	e.staffMessage(browserStaffLive)
	waitText(t, ctx, "#messages", browserStaffLive)
	assert.Equal(t, 42, browserValue(t, ctx, chromedp.Evaluate[int](`window.carebridgeMarker`)), "no reload")
	items := browserValue(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#messages li')).map(li => li.className)`))
	assert.Equal(t, []string{"msg theirs", "msg mine", "msg mine", "msg theirs"}, items, "oldest first")
	screenshot(t, ctx, "securechat-chat.png")

	// Readable at 320 px: nothing wider than the screen.
	browserRun(t, ctx, chromedp.EmulateViewport(320, 640, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	assert.LessOrEqual(t, browserValue(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)), 320)

	// Signing out ends the session and the stream.
	browserRun(t, ctx, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.CSS("h1")))
	waitText(t, ctx, "h1", "You are signed out")
	require.Eventually(t, func() bool { return e.liveSubscribers() == 0 }, 10*time.Second, 50*time.Millisecond)
}

func TestBrowserFlowWithoutJavaScript(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	e.staffMessage(browserStaffFirst)
	ctx := testenv.NewBrowser(t, false)
	browserSignIn(t, ctx, e, false)

	browserRun(t, ctx, chromedp.SendKeys(chromedp.ID("text"), browserPatientText), chromedp.Click(chromedp.ID("send")))
	waitText(t, ctx, "#messages li.mine", "It itches most at night.")
	pngPath, png := writeTestPNG(t)
	browserRun(t, ctx, chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{pngPath}), chromedp.Click(chromedp.ID("upload")))
	require.Eventually(t, func() bool {
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("#messages")))
		return err == nil && strings.Contains(html, `<img src="/chat/file/`)
	}, 20*time.Second, 100*time.Millisecond, "the upload shows after the form's reload")
	assertDelivered(t, e, png)
	assert.Zero(t, e.liveSubscribers(), "no script ran: no event stream")

	// Without live updates, "Check for new messages" shows the staff's answer.
	e.staffMessage(browserStaffLive)
	browserRun(t, ctx, chromedp.Click(chromedp.ID("check")))
	waitText(t, ctx, "#messages", browserStaffLive)

	browserRun(t, ctx, chromedp.Click(chromedp.ID("signout")))
	waitText(t, ctx, "h1", "You are signed out")
	browserRun(t, ctx, chromedp.Navigate(e.srv.URL+"/chat"))
	waitText(t, ctx, "h1", "You are signed out")
	assert.Equal(t, e.srv.URL+"/chat/signed-out", browserValue(t, ctx, chromedp.Location()))
}

func TestBrowserSpanish(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	ctx := testenv.NewBrowser(t, true)
	browserRun(t, ctx, chromedp.Navigate(e.linkURL+"?lang=es"), chromedp.WaitVisible(chromedp.ID("send-code")))
	assert.Equal(t, "Envíenme un código", strings.TrimSpace(browserValue(t, ctx, chromedp.TextContent(chromedp.ID("send-code")))))
	browserRun(t, ctx, chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
	code := e.backend.lastCode(t)
	assert.Equal(t, CodeText("es", testClinic, code, e.host(), 10*time.Minute), e.backend.texts()[0])
	assert.Equal(t, "es", browserValue(t, ctx, chromedp.Evaluate[string](`document.documentElement.lang`)))
	// The switch link goes back to English.
	browserRun(t, ctx, chromedp.Click(chromedp.CSS("a.lang")))
	waitText(t, ctx, "h1", "Enter the code we texted you")
}

// pageCost is what the last load of the page cost the browser: the document and every
// resource it fetched (a resource from the browser's cache costs nothing).
const pageCost = `(() => {
	const nav = performance.getEntriesByType('navigation')[0];
	return performance.getEntriesByType('resource').reduce((sum, r) => sum + r.transferSize, nav.transferSize);
})()`

// imagesLoaded tells whether every photo on the page is loaded.
const imagesLoaded = `Array.from(document.querySelectorAll('#messages img')).every(img => img.complete && img.naturalWidth > 0)`

func TestBrowserPhonePhotoCostsLittle(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	e.staffMessage(browserStaffFirst)
	ctx := testenv.NewBrowser(t, true)
	browserSignIn(t, ctx, e, false)

	// A phone's photo: 4032×3024, megabytes, with its position in EXIF.
	photo := withPhoneMetadata(t, phonePhoto(t, 4032, 3024), 1)
	require.Greater(t, len(photo), 1<<20)
	path := filepath.Join(t.TempDir(), "IMG_0042.jpg")
	require.NoError(t, os.WriteFile(path, photo, 0o600))
	browserRun(t, ctx, chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{path}), chromedp.Click(chromedp.ID("upload")),
		chromedp.WaitVisible(chromedp.CSS("#messages li.mine img")))
	waitText(t, ctx, "#upload-status", "Sent.")
	calls := e.backend.patientCalls()
	require.Len(t, calls, 1)
	assert.NotContains(t, string(calls[0].Data), gpsMarker, "staff get it without its position")

	// The next views of the chat: the page and the photo's preview, well under 200 KB.
	for view := range 2 {
		browserRun(t, ctx, chromedp.Navigate(e.srv.URL+"/chat"), chromedp.WaitVisible(chromedp.CSS("#messages li.mine img")))
		require.Eventually(t, func() bool {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](imagesLoaded))
			return err == nil && ok
		}, 20*time.Second, 100*time.Millisecond, "the photo shows")
		cost := browserValue(t, ctx, chromedp.Evaluate[int](pageCost))
		preview := browserValue(t, ctx, chromedp.Evaluate[int](`performance.getEntriesByType('resource').
			filter(r => r.name.endsWith('/preview')).reduce((sum, r) => sum + r.transferSize, 0)`))
		t.Logf("View %d of the chat with a %d-byte phone photo cost %d bytes (its preview %d)", view+2, len(photo), cost, preview)
		assert.Less(t, cost, 200_000)
		assert.Greater(t, preview, 0, "the measure counts the photo")
	}
	img := browserValue(t, ctx, chromedp.Evaluate[[]int](`(() => { const i = document.querySelector('#messages li.mine img');
		return [i.naturalWidth, i.naturalHeight, i.width > 0 ? 1 : 0]; })()`))
	assert.Equal(t, []int{640, 480, 1}, img, "the preview, not the original")
	assert.Equal(t, "lazy", browserValue(t, ctx, chromedp.Evaluate[string](`document.querySelector('#messages li.mine img').loading`)))
	alt := browserValue(t, ctx, chromedp.Evaluate[string](`document.querySelector('#messages li.mine img').alt`))
	assert.True(t, strings.HasPrefix(alt, "Photo you sent, "), alt)

	// A tap opens the original.
	href := browserValue(t, ctx, chromedp.Evaluate[string](`document.querySelector('#messages li.mine a.image-link').href`))
	browserRun(t, ctx, chromedp.Click(chromedp.CSS("#messages li.mine a.image-link")))
	require.Eventually(t, func() bool {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		return err == nil && loc == href
	}, 10*time.Second, 100*time.Millisecond)
	width := browserValue(t, ctx, chromedp.Evaluate[int](`document.images[0] ? document.images[0].naturalWidth : 0`))
	assert.Equal(t, 4032, width, "the original")
}

// largeText sets the browser's default text size to 32 px, twice the usual 16 (the
// phone's "larger text" at 200%): the pages size their text in rem.
func largeText(t *testing.T, ctx context.Context) {
	t.Helper()
	browserRun(t, ctx, chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, page.SetFontSizes, page.SetFontSizesParams{FontSizes: &page.FontSizes{Standard: 32}})
		return err
	}))
}

// layoutProblems lists what does not fit a narrow screen: a page wider than the screen,
// the sign-out button outside it, the language link over the clinic's name.
const layoutProblems = `(() => {
	const problems = [];
	const width = document.documentElement.clientWidth;
	if (document.documentElement.scrollWidth > width) {
		problems.push('page is ' + document.documentElement.scrollWidth + ' px wide on a ' + width + ' px screen');
	}
	for (const el of document.querySelectorAll('body *')) {
		const r = el.getBoundingClientRect();
		const name = el.id || el.className || el.tagName;
		if (r.width > 0 && r.right > width + 0.5 && getComputedStyle(el).position !== 'absolute') {
			problems.push(name + ' ends at ' + Math.round(r.right));
		} else if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible' && el.clientWidth > 0) {
			problems.push(name + ' overflows: ' + el.scrollWidth + ' px in ' + el.clientWidth);
		}
	}
	const out = document.getElementById('signout');
	if (out) {
		const r = out.getBoundingClientRect();
		if (r.left < 0 || r.right > width) problems.push('sign out is off screen');
	}
	const lang = document.querySelector('a.lang').getBoundingClientRect();
	const clinic = document.querySelector('.brand').getBoundingClientRect();
	if (lang.left < clinic.right && clinic.left < lang.right && lang.top < clinic.bottom && clinic.top < lang.bottom) {
		problems.push('the language link overlaps the clinic name');
	}
	return problems.slice(0, 8);
})()`

func TestBrowserNarrowScreenLargeText(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	e.svc.ClinicName = "Riverside Community Family Health Clinic"
	e.svc.Config.Pages = config.PagesConfig{ClinicPhone: "+15550001111", HelpURL: "https://riverside.example/help",
		PrivacyURL: "https://riverside.example/privacy", AccessibilityURL: "https://riverside.example/accessibility"}
	require.NoError(t, e.svc.SetDOB(context.Background(), e.conv, "1980-02-03", testNurse))
	e.staffMessage(browserStaffFirst + " Ver: https://riverside.example/instructions/wound-care-after-the-procedure-2024.pdf")
	ctx := testenv.NewBrowser(t, true)
	browserRun(t, ctx, chromedp.EmulateViewport(320, 640, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	largeText(t, ctx)
	check := func(name string) {
		t.Helper()
		problems := browserValue(t, ctx, chromedp.Evaluate[[]string](layoutProblems))
		assert.Empty(t, problems, "%s at 320 px with 200%% text", name)
	}
	for _, lang := range []string{"es", "en"} {
		browserRun(t, ctx, chromedp.Navigate(e.linkURL+"?lang="+lang), chromedp.WaitVisible(chromedp.ID("send-code")))
		check("link page " + lang)
		browserRun(t, ctx, chromedp.Navigate(e.srv.URL+LinkPath+"AAAAAAAAAAAAAAAAAAAAAAAAA"), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("unknown link " + lang)
		browserRun(t, ctx, chromedp.Navigate(e.srv.URL+"/chat/signed-out"), chromedp.WaitVisible(chromedp.CSS("h1")))
		check("signed out " + lang)
	}
	browserRun(t, ctx, chromedp.Navigate(e.linkURL), chromedp.WaitVisible(chromedp.ID("send-code")),
		chromedp.Click(chromedp.ID("send-code")), chromedp.WaitVisible(chromedp.ID("code")))
	check("code page")
	code := e.backend.lastCode(t)
	browserRun(t, ctx, chromedp.SendKeys(chromedp.ID("code"), wrongCode(code)), chromedp.SendKeys(chromedp.ID("dob-month"), "2"),
		chromedp.SendKeys(chromedp.ID("dob-day"), "3"), chromedp.SendKeys(chromedp.ID("dob-year"), "1980"),
		chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("form-error")))
	check("code page with an error")
	browserRun(t, ctx, chromedp.SendKeys(chromedp.ID("code"), code), chromedp.SendKeys(chromedp.ID("dob-month"), "2"),
		chromedp.SendKeys(chromedp.ID("dob-day"), "3"), chromedp.SendKeys(chromedp.ID("dob-year"), "1980"),
		chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("messages")))
	pngPath, _ := writeTestPNG(t)
	browserRun(t, ctx, chromedp.SetUploadFiles(chromedp.ID("file-choose"), []string{pngPath}), chromedp.Click(chromedp.ID("upload")),
		chromedp.WaitVisible(chromedp.CSS("#messages li.mine img")))
	for _, lang := range []string{"en", "es"} {
		browserRun(t, ctx, chromedp.Navigate(e.srv.URL+"/chat?lang="+lang), chromedp.WaitVisible(chromedp.ID("messages")))
		check("chat page " + lang)
	}
	browserRun(t, ctx, chromedp.ScrollIntoView(chromedp.ID("upload-form")))
	screenshot(t, ctx, "securechat-chat-320-large-text.png")
}
