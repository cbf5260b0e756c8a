package testenv

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// DepChromium names headless Chromium for RequireDep.
const DepChromium = "Chromium"

func init() {
	installHints[DepChromium] = "apt-get install -y chromium"
}

// ChromiumPath finds the Chromium binary.
func ChromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("no chromium on PATH")
}

// NewBrowser starts headless Chromium (flags for this closed network, a fresh profile)
// with a phone-sized viewport; scripts false disables JavaScript in its tab.
func NewBrowser(t testing.TB, scripts bool) context.Context {
	t.Helper()
	ctx, _ := NewBrowserProfile(t, scripts)
	return ctx
}

// NewBrowserProfile is NewBrowser, with a function that closes the browser before the test
// ends (its profile, a new user-data-dir, goes with it): a test can close one browser and open
// another with a fresh profile. Closing twice, or t.Cleanup after it, is harmless.
func NewBrowserProfile(t testing.TB, scripts bool) (context.Context, func()) {
	t.Helper()
	path, err := ChromiumPath()
	RequireDep(t, DepChromium, err)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	closeBrowser := func() {
		cancel()
		cancelAlloc()
	}
	t.Cleanup(closeBrowser)
	// The first action starts the browser; it must not carry a timeout.
	steps := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)}
	if !scripts {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
			_, err := cdp.Call(ctx, tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("failed to start Chromium: %v", err)
	}
	return ctx, closeBrowser
}

// EvalString evaluates expr, an expression whose value is a string, in the browser's page.
func EvalString(t testing.TB, browser context.Context, expr string) string {
	t.Helper()
	v, err := chromedp.Run(browser, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("failed to evaluate %s: %v", expr, err)
	}
	return v
}

// WaitString polls expr (a string expression) every 20 ms until it is not empty, and returns
// it. After limit it fails the test with what and the value of explain, an expression that
// says why (the page's state and errors).
func WaitString(t testing.TB, browser context.Context, what, expr, explain string, limit time.Duration) string {
	t.Helper()
	v, err := chromedp.Run(browser, chromedp.Poll[string](expr, chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		why, _ := chromedp.Run(browser, chromedp.Evaluate[string](explain))
		t.Fatalf("%s: %v (%s)", what, err, why)
	}
	return v
}
