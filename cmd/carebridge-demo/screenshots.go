package main

// `carebridge-demo screenshots` takes the README's pictures of the patient's side from a
// running demo: it plays the script's conversation, then opens the pages in headless
// Chromium at a phone's width (390 CSS px) with the patient's signed-in browser.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"maunium.net/go/mautrix/event"
)

// shotWidth and shotHeight are an iPhone's screen in CSS pixels; pictures are taken at
// twice that, as the phone draws them.
const shotWidth, shotHeight, shotScale = 390, 844, 2

func runScreenshots(args []string) int {
	flags := flag.NewFlagSet("carebridge-demo screenshots", flag.ContinueOnError)
	bridgeURL := flags.String("bridge", "http://127.0.0.1:29340", "the demo bridge's address")
	hsURL := flags.String("homeserver", "http://127.0.0.1:8008", "the demo homeserver's address")
	out := flags.String("out", "docs/screenshots", "folder for the pictures")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &scriptRun{bridge: strings.TrimRight(*bridgeURL, "/"), homeserver: strings.TrimRight(*hsURL, "/"),
		patient: randomPatientNumber(), out: io.Discard}
	fmt.Printf("==> Playing the demo script's conversation (patient %s)\n", s.patient)
	err := s.run(ctx)
	if err == nil {
		err = s.takeScreenshots(ctx, *out)
	}
	if s.staff != nil {
		s.staff.close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo-screenshots: %v\n", err)
		return 1
	}
	return 0
}

// takeScreenshots writes the link, code and chat pages and the simulated phone. Before the
// chat, staff read the patient's photo and start typing, so the chat shows both.
func (s *scriptRun) takeScreenshots(ctx context.Context, dir string) error {
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			chrome = path
			break
		}
	}
	if chrome == "" {
		return errors.New("no Chromium on PATH (apt-get install chromium)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true), chromedp.Flag("lang", "en-US"))
	defer cancelAlloc()
	browser, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first action starts the browser; it must not carry a timeout.
	if err := chromedp.Do(browser, chromedp.EmulateViewport(shotWidth, shotHeight, chromedp.EmulateMobile)); err != nil {
		return fmt.Errorf("failed to start Chromium: %w", err)
	}
	do := func(actions ...chromedp.Action[chromedp.Void]) error {
		actx, acancel := context.WithTimeout(browser, scriptWait)
		defer acancel()
		return chromedp.Do(actx, actions...)
	}
	shoot := func(name string, scale float64, target string, ready chromedp.Action[chromedp.Void]) error {
		if err := do(chromedp.EmulateViewport(shotWidth, shotHeight, chromedp.EmulateScale(scale), chromedp.EmulateMobile),
			chromedp.Navigate(target), ready, chromedp.Sleep(300*time.Millisecond)); err != nil {
			return fmt.Errorf("failed to open %s: %w", name, err)
		}
		png, err := chromedp.Run(browser, chromedp.CaptureScreenshot())
		if err != nil {
			return fmt.Errorf("failed to take %s: %w", name, err)
		}
		path := filepath.Join(dir, name)
		if err = os.WriteFile(path, png, 0o644); err != nil {
			return err
		}
		fmt.Printf("==> Wrote %s\n", path)
		return nil
	}

	// The simulated phone, with the alert (before the browser holds the patient's cookies).
	if err := shoot("phone.png", 1, s.phone.base+"/phone/"+url.PathEscape(s.patient), chromedp.WaitVisible(chromedp.CSS("article.msg.in a"))); err != nil {
		return err
	}
	if err := shoot("securechat-link.png", shotScale, s.link, chromedp.WaitVisible(chromedp.ID("send-code"))); err != nil {
		return err
	}
	if err := shoot("securechat-code.png", shotScale, s.link+"/verify?sent=1", chromedp.WaitVisible(chromedp.ID("code"))); err != nil {
		return err
	}

	// The chat, signed in as the script's patient, while staff have read and are typing.
	chat, err := url.Parse(s.bridge + "/chat")
	if err != nil {
		return err
	}
	for _, c := range s.browser.Jar.Cookies(chat) {
		if err = do(chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
			_, err := cdp.Call(ctx, tab, network.SetCookie, network.SetCookieParams{Name: c.Name, Value: c.Value, URL: chat.String()})
			return err
		})); err != nil {
			return fmt.Errorf("failed to give the browser the patient's session: %w", err)
		}
	}
	if err = s.staff.Matrix.SendReceipt(ctx, s.roomID, s.replyEvent, event.ReceiptTypeRead, nil); err != nil {
		return fmt.Errorf("staff could not mark the photo read: %w", err)
	}
	if _, err = s.staff.Matrix.UserTyping(ctx, s.roomID, true, 30*time.Second); err != nil {
		return fmt.Errorf("staff could not start typing: %w", err)
	}
	defer func() { _, _ = s.staff.Matrix.UserTyping(context.WithoutCancel(ctx), s.roomID, false, 0) }()
	return shoot("securechat-chat.png", shotScale, chat.String(), chromedp.Poll[chromedp.Void](
		`document.getElementById('seen').textContent !== '' && document.getElementById('typing').textContent !== ''`))
}
