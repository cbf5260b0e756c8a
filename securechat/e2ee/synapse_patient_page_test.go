//go:build e2eepatient

package e2ee

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// testPage is the bridge's Page on the test's origin (the proxy at the root, the events under
// /e2ee/), with one asset URL that can be served with a byte changed (the SRI check).
type testPage struct {
	*Page
	tamper atomic.Pointer[string]
}

func newTestPage(t *testing.T, modules string) *testPage {
	t.Helper()
	p, err := NewPage(PageConfig{
		WasmDir: filepath.Join(modules, "@matrix-org", "matrix-sdk-crypto-wasm", "pkg"),
		Base:    "/e2ee/", ProxyBase: "", EventsPath: "/e2ee/events",
	})
	require.NoError(t, err)
	return &testPage{Page: p}
}

// mount serves the page for rig's device and the assets, as the bridge mounts them.
func (tp *testPage) mount(mux *http.ServeMux, rig *patientRig) {
	mux.HandleFunc(tp.PagePath(), func(rw http.ResponseWriter, r *http.Request) {
		tp.ServePage(rw, r, PageDevice{User: rig.patient, Device: rig.device(), Room: rig.room})
	})
	mux.HandleFunc(tp.AssetPrefix(), func(rw http.ResponseWriter, r *http.Request) {
		if u := tp.tamper.Load(); u != nil && *u == r.URL.Path {
			body := bytes.Clone(tp.byURL[*u].body)
			body[len(body)-2] ^= 1
			rw.Header().Set("Content-Type", tp.byURL[*u].ctype)
			_, _ = rw.Write(body)
			return
		}
		tp.ServeAsset(rw, r)
	})
}

// pageTrouble is what a failed wait on the page reports: its state and the errors it kept.
const pageTrouble = testenv.E2EEPageTrouble

// TestPatientPageInChromiumOnSynapse is step 5 of issue 18: the patient's device is a page in
// headless Chromium, served from the origin of the proxy and the events endpoint, with
// matrix-sdk-crypto-wasm loaded under a CSP and subresource integrity. It cross-signs itself,
// shows the nurse's message decrypted, and sends what the patient types; the nurse's Element
// decrypts it as from the page's device, with no shield. Then it measures the page's load,
// cached and not, unthrottled and on Slow 4G.
func TestPatientPageInChromiumOnSynapse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	modules, err := testenv.ElementCryptoAvailable()
	testenv.RequireDep(t, testenv.DepElementCrypto, err)
	assets := newTestPage(t, modules)
	rig := newPatientRigWith(t, ctx, rigOptions{noNode: true, mount: assets.mount})
	t.Logf("assets: wasm %d bytes (gzip %d), bindings %d (gzip %d), core %d, page module %d",
		len(assets.Wasm.body), len(assets.Wasm.gz), len(assets.Bindings.body), len(assets.Bindings.gz), len(assets.Core.body), len(assets.Module.body))

	browser := testenv.NewBrowser(t, true)
	_, err = chromedp.Call(browser, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	eval := func(expr string) string { return testenv.EvalString(t, browser, expr) }
	// waitJS waits until expr (a string expression) is not empty, or fails with the page's errors.
	waitJS := func(what, expr string, limit time.Duration) string {
		return testenv.WaitString(t, browser, what, expr, pageTrouble, limit)
	}

	// The page loads, uploads its keys and cross-signs itself.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(rig.pageURL+"/e2ee/page")))
	waitJS("the page never cross-signed itself", `document.getElementById('status').dataset.state === 'cross-signed' ? 'yes' : ''`, time.Minute)
	marks := eval(`JSON.stringify(window.__e2ee.marks)`)
	t.Logf("page marks, ms from navigation start: %s", marks)
	assert.Equal(t, `{"has_master":true,"has_self_signing":true,"has_user_signing":true}`, eval(`JSON.stringify(window.__e2ee.crossSigned)`))
	csp, err := chromedp.Run(browser, chromedp.Evaluate[string](`fetch(location.href).then(r => r.headers.get('content-security-policy') ?? '')`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Equal(t, PageCSP, csp, "the page's CSP")

	// The nurse (Element, cross-signed: the page shares only with signed devices) joins and writes.
	staff := testenv.StartElementAgent(t, rig.hs.URL(), rig.nurse.String(), rig.nursePassword, testenv.ElementOptions{CrossSign: true})
	_, err = staff.WaitJoined(ctx, rig.room.String())
	require.NoError(t, err)
	const sentinel = "staff-sentinel-4a17: the clinic opens at 9"
	staffEvent, sentAt, err := staff.Send(ctx, rig.room.String(), sentinel)
	require.NoError(t, err)
	sel := fmt.Sprintf(`document.querySelector('#messages li.theirs[data-event-id="%s"]')`, staffEvent)
	text := waitJS("the page never showed the nurse's message decrypted", sel+`?.textContent ?? ''`, time.Minute)
	t.Logf("nurse's send → decrypted text in the page's DOM: %s", time.Since(sentAt).Round(time.Millisecond))
	assert.Equal(t, sentinel, text, "the page shows the nurse's text")
	assert.Equal(t, staff.DeviceID, eval(sel+`.dataset.senderDevice`), "the room key came from the nurse's Element device")
	assert.Equal(t, rig.nurse.String(), eval(sel+`.dataset.sender`))

	// The patient types a reply in the page; Element decrypts it.
	const replySentinel = "patient-sentinel-c3d8: see you then"
	replyStarted := time.Now()
	require.NoError(t, chromedp.Do(browser, chromedp.SendKeys(chromedp.ID("text"), replySentinel), chromedp.Click(chromedp.ID("send"))))
	replyID := waitJS("the page never sent the reply", `document.querySelector('#messages li.mine')?.dataset.eventId ?? ''`, time.Minute)
	msg, err := staff.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.EventID == replyID })
	require.NoError(t, err, "the nurse's Element never decrypted the page's reply")
	t.Logf("patient's reply typed → decrypted in Element: %s; shield %q (%s)", time.Since(replyStarted).Round(time.Millisecond), msg.Shield, msg.ShieldReason)
	assert.Equal(t, replySentinel, msg.Body)
	assert.Equal(t, rig.patient.String(), msg.Sender)
	assert.True(t, msg.Encrypted)
	assert.Equal(t, rig.dev.String(), msg.SenderDevice, "Element attributes the reply to the page's device")
	assert.Equal(t, "none", msg.Shield, "no shield: the page's device is signed by its owner")
	assert.Empty(t, msg.ShieldReason)
	assert.Empty(t, eval(`document.getElementById('text').value`), "the box is emptied")
	assert.Empty(t, staff.Undecryptable())
	devices, err := staff.Devices(ctx, rig.patient.String())
	require.NoError(t, err)
	if assert.Len(t, devices, 1) {
		assert.True(t, devices[0].SignedByOwner, "Element sees the page's device as signed by its owner")
	}
	stats := eval(`JSON.stringify(window.__e2ee.device.stats())`)
	t.Logf("page stats: %s", stats)
	assert.Contains(t, stats, `"refused":0`, "the proxy refused none of the page's requests")
	assert.Contains(t, stats, `"undecrypted":0`)
	assert.Equal(t, "[]", eval(`JSON.stringify(window.__e2ee.errors)`), "the page reported no error")

	// Load figures: the page in ?measure=1 stops once the wasm is instantiated and an
	// OlmMachine initialised. Uncached (HTTP cache cleared, which takes V8's wasm code cache
	// with it), then cached (a second navigation in the same profile), unthrottled and Slow 4G.
	measure := func(name string, clear bool, cond *network.Conditions) testenv.E2EEPageLoad {
		return testenv.MeasureE2EEPageLoad(t, browser, name, rig.pageURL+"/e2ee/page?measure=1", testenv.E2EEPageLoadOptions{Clear: clear, Conditions: cond})
	}
	uncached := measure("uncached, unthrottled", true, nil)
	cached := measure("cached, unthrottled", false, nil)
	slowUncached := measure("uncached, Slow 4G", true, testenv.Slow4G)
	slowCached := measure("cached, Slow 4G", false, testenv.Slow4G)
	_, err = chromedp.Call(browser, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{}})
	require.NoError(t, err)

	// Subresource integrity: a changed byte in the .wasm (fetch's integrity) or in the shared
	// core module (modulepreload's integrity, then import() of the same URL) stops the page.
	for _, as := range []*PageAsset{assets.Wasm, assets.Core} {
		assets.tamper.Store(&as.URL)
		_, err := chromedp.Call(browser, network.ClearBrowserCache, struct{}{})
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(browser, chromedp.Navigate(rig.pageURL+"/e2ee/page?measure=1")))
		state := waitJS("the page with a changed "+as.URL, `['failed', 'measured'].includes(document.getElementById('status').dataset.state) ? document.getElementById('status').dataset.state : ''`, time.Minute)
		assert.Equal(t, "failed", state, "the page refused the changed %s", as.URL)
		t.Logf("changed %s: page %s: %s", as.URL, state, eval(`JSON.stringify(window.__e2ee.errors).slice(0, 200)`))
	}
	assets.tamper.Store(nil)

	// What is asserted is what the cache and the throttle must do, not the targets: those are
	// figures for the report (issue 18: < 6 s uncached on Slow 4G, < 1.5 s cached).
	assert.Greater(t, uncached.WasmBytes, float64(len(assets.Wasm.gz))*0.99, "uncached: the wasm came over the network, gzipped")
	assert.Less(t, uncached.WasmBytes, float64(len(assets.Wasm.body))/2, "the wasm is sent compressed")
	assert.Zero(t, cached.WasmBytes, "cached: the wasm came from the cache")
	assert.Zero(t, slowCached.WasmBytes)
	assert.Greater(t, slowUncached.ReadyMS, float64(len(assets.Wasm.gz))/testenv.Slow4G.DownloadThroughput*1000*0.9, "Slow 4G throttled the wasm's download")
	t.Logf("targets (issue 18): uncached Slow 4G %.1f s (target < 6 s: %v); cached Slow 4G %.2f s (target < 1.5 s: %v)",
		slowUncached.ReadyMS/1000, slowUncached.ReadyMS < 6000, slowCached.ReadyMS/1000, slowCached.ReadyMS < 1500)
}
