package securechat

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

func TestTypingNamesAndLapses(t *testing.T) {
	h := NewHub()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	assert.True(t, h.setTyping("l", "p", "@kim:clinic.example", "Nurse Kim", true, now))
	assert.False(t, h.setTyping("l", "p", "@kim:clinic.example", "Nurse Kim", true, now.Add(time.Second)), "a renewal changes nothing shown")
	assert.True(t, h.setTyping("l", "p", "@patel:clinic.example", "Dr. Patel", true, now.Add(2*time.Second)))
	keys, names, until := h.typing("l", "p", now.Add(3*time.Second))
	assert.Equal(t, []string{"@kim:clinic.example", "@patel:clinic.example"}, keys)
	assert.Equal(t, []string{"Nurse Kim", "Dr. Patel"}, names)
	assert.Equal(t, now.Add(time.Second+typingTimeout), until)
	assert.Equal(t, "Nurse Kim and Dr. Patel are typing…", typingText(langEnglish, names))
	assert.Equal(t, "Nurse Kim y Dr. Patel están escribiendo…", typingText(langSpanish, names))
	assert.Equal(t, "A, B and C are typing…", typingText(langEnglish, []string{"A", "B", "C"}))
	assert.Equal(t, "Nurse Kim is typing…", typingText(langEnglish, names[:1]))

	assert.True(t, h.setTyping("l", "p", "@patel:clinic.example", "", false, now.Add(4*time.Second)))
	assert.False(t, h.setTyping("l", "p", "@patel:clinic.example", "", false, now.Add(4*time.Second)), "stopping twice")
	_, names, _ = h.typing("l", "p", now.Add(time.Second+typingTimeout))
	assert.Empty(t, names, "a typing that is not said again lapses")
	assert.Empty(t, h.typists, "nothing kept for it")
	_, names, _ = h.typing("l", "other", now)
	assert.Empty(t, names)
}

// The chat page shows "Seen by the clinic" under the patient's newest message once staff
// read it, and who is typing while they do, live and after a reload.
func TestBrowserSeenAndTyping(t *testing.T) {
	e := newWebEnv(t, "sqlite", webEnvOptions{insecure: true})
	e.staffMessage(browserStaffFirst)
	ctx := testenv.NewBrowser(t, true)
	browserSignIn(t, ctx, e, false)
	require.Eventually(t, func() bool { return e.liveSubscribers() == 1 }, 10*time.Second, 50*time.Millisecond)
	browserRun(t, ctx, chromedp.Evaluate[chromedp.Void](`window.carebridgeMarker = 42`))
	browserRun(t, ctx, chromedp.SendKeys(chromedp.ID("text"), browserPatientText), chromedp.Click(chromedp.ID("send")))
	waitText(t, ctx, "#messages li.mine", "It itches most at night.")
	assert.Empty(t, browserValue(t, ctx, chromedp.TextContent(chromedp.ID("seen"))), "not seen yet")

	ctxb := context.Background()
	rows := e.storedMessages()
	require.Len(t, rows, 2)
	require.NoError(t, e.svc.StaffRead(ctxb, e.conv, rows[1].ID, time.Time{}))
	waitText(t, ctx, "#seen", "Seen by the clinic")

	e.svc.StaffTyping(e.conv, "@kim:clinic.example", testStaffName, true)
	waitText(t, ctx, "#typing", testStaffName+" is typing…")
	visible := browserValue(t, ctx, chromedp.Evaluate[bool](`getComputedStyle(document.getElementById('typing')).display !== 'none'`))
	assert.True(t, visible)
	screenshot(t, ctx, "securechat-activity.png")

	// After a reload both are still there (the page is drawn with them).
	browserRun(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("messages")))
	assert.Equal(t, "Seen by the clinic", browserValue(t, ctx, chromedp.TextContent(chromedp.ID("seen"))))
	assert.Equal(t, testStaffName+" is typing…", browserValue(t, ctx, chromedp.TextContent(chromedp.ID("typing"))))
	require.Eventually(t, func() bool { return e.liveSubscribers() == 1 }, 10*time.Second, 50*time.Millisecond)

	// Typing stops; the staff reply replaces "Seen" (the newest message is theirs now).
	e.svc.StaffTyping(e.conv, "@kim:clinic.example", "", false)
	require.Eventually(t, func() bool {
		text, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("typing")))
		return err == nil && text == ""
	}, 20*time.Second, 100*time.Millisecond, "typing ends")
	e.staffMessage(browserStaffLive)
	waitText(t, ctx, "#messages", browserStaffLive)
	require.Eventually(t, func() bool {
		text, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("seen")))
		return err == nil && text == ""
	}, 20*time.Second, 100*time.Millisecond, "seen goes with a newer staff message")
}
