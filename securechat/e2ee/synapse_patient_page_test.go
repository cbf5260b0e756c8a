//go:build e2eepatient

package e2ee

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// pageCSP is the patient page's Content-Security-Policy: scripts only from the bridge's own
// origin, and WebAssembly compilation (matrix-sdk-crypto-wasm) without allowing eval.
const pageCSP = "script-src 'self' 'wasm-unsafe-eval'"

// pageAsset is one static file of the patient page: content-hashed URL, SRI value, and its
// bytes as they are and gzipped.
type pageAsset struct {
	URL, Integrity string
	ctype          string
	body, gz       []byte
}

// pageAssets serves the patient page (HTML, its module, the shared crypto module, and
// matrix-sdk-crypto-wasm's bindings and .wasm) from the origin of the proxy and the events
// endpoint, as the bridge's secure chat would.
type pageAssets struct {
	Bindings, Wasm, Core, Page *pageAsset
	byURL                      map[string]*pageAsset
	html                       *template.Template
	tamper                     atomic.Pointer[string] // an asset URL served with one byte changed
}

func newPageAssets(t *testing.T, modules string) *pageAssets {
	t.Helper()
	pkg := filepath.Join(modules, "@matrix-org", "matrix-sdk-crypto-wasm", "pkg")
	a := &pageAssets{byURL: map[string]*pageAsset{}}
	load := func(path, name, ext, ctype string) *pageAsset {
		body, err := os.ReadFile(path)
		require.NoError(t, err)
		sum := sha256.Sum256(body)
		sri := sha512.Sum384(body)
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = w.Write(body)
		require.NoError(t, w.Close())
		as := &pageAsset{
			URL:       fmt.Sprintf("/e2ee/assets/%s.%s.%s", name, hex.EncodeToString(sum[:8]), ext),
			Integrity: "sha384-" + base64.StdEncoding.EncodeToString(sri[:]),
			ctype:     ctype, body: body, gz: gz.Bytes(),
		}
		a.byURL[as.URL] = as
		return as
	}
	a.Bindings = load(filepath.Join(pkg, "matrix_sdk_crypto_wasm_bg.js"), "matrix_sdk_crypto_wasm_bg", "js", "text/javascript")
	a.Wasm = load(filepath.Join(pkg, "matrix_sdk_crypto_wasm_bg.wasm"), "matrix_sdk_crypto_wasm_bg", "wasm", "application/wasm")
	a.Core = load(filepath.Join("testdata", "patient_core.mjs"), "patient_core", "mjs", "text/javascript")
	a.Page = load(filepath.Join("testdata", "patient_page.mjs"), "patient_page", "mjs", "text/javascript")
	var err error
	a.html, err = template.ParseFiles(filepath.Join("testdata", "patient_page.html"))
	require.NoError(t, err)
	return a
}

// ServeHTTP serves the content-hashed assets: immutable, gzipped when the browser takes it.
func (a *pageAssets) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	as, ok := a.byURL[r.URL.Path]
	if !ok || r.Method != http.MethodGet {
		http.NotFound(rw, r)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", as.ctype)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	body := as.body
	if u := a.tamper.Load(); u != nil && *u == as.URL {
		body = bytes.Clone(as.body)
		body[len(body)-2] ^= 1
	} else if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = as.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	_, _ = rw.Write(body)
}

// page serves the HTML: the assets' URLs and SRI values, the page's IDs, the CSP.
func (a *pageAssets) page(rig *patientRig) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var out bytes.Buffer
		err := a.html.Execute(&out, map[string]any{
			"Bindings": a.Bindings, "Wasm": a.Wasm, "Core": a.Core, "Page": a.Page,
			"ProxyBase": "", "EventsURL": "/e2ee/events",
			"UserID": rig.patient.String(), "DeviceID": rig.device().String(), "RoomID": rig.room.String(),
		})
		if err != nil {
			http.Error(rw, "template", http.StatusInternalServerError)
			return
		}
		h := rw.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = rw.Write(out.Bytes())
	})
}

// slow4G is Chrome DevTools' "Slow 4G" preset (the same values as Puppeteer's
// PredefinedNetworkConditions["Slow 4G"], an alias of the former "Fast 3G", crbug 342406608):
// 150 ms × 3.75 latency, 1.6 Mbps × 0.9 down, 750 kbps × 0.9 up, in bytes per second.
var slow4G = &network.Conditions{Latency: 150 * 3.75, DownloadThroughput: 1.6e6 / 8 * 0.9, UploadThroughput: 750e3 / 8 * 0.9}

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
	assets := newPageAssets(t, modules)
	rig := newPatientRigWith(t, ctx, rigOptions{noNode: true, mount: func(mux *http.ServeMux, rig *patientRig) {
		mux.Handle("/e2ee/page", assets.page(rig))
		mux.Handle("/e2ee/assets/", assets)
	}})
	t.Logf("assets: wasm %d bytes (gzip %d), bindings %d (gzip %d), core %d, page module %d",
		len(assets.Wasm.body), len(assets.Wasm.gz), len(assets.Bindings.body), len(assets.Bindings.gz), len(assets.Core.body), len(assets.Page.body))

	browser := testenv.NewBrowser(t, true)
	_, err = chromedp.Call(browser, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	eval := func(expr string) string {
		v, err := chromedp.Run(browser, chromedp.Evaluate[string](expr))
		require.NoError(t, err, expr)
		return v
	}
	// waitJS waits until expr (a string expression) is not empty, or fails with the page's errors.
	waitJS := func(what, expr string, limit time.Duration) string {
		v, err := chromedp.Run(browser, chromedp.Poll[string](expr, chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(20*time.Millisecond)))
		if err != nil {
			errs, _ := chromedp.Run(browser, chromedp.Evaluate[[]string](`window.__e2ee ? window.__e2ee.errors : ["no __e2ee"]`))
			state, _ := chromedp.Run(browser, chromedp.Evaluate[string](`document.getElementById('status')?.dataset.state ?? ''`))
			require.NoError(t, err, "%s (page state %q, errors %v)", what, state, errs)
		}
		return v
	}

	// The page loads, uploads its keys and cross-signs itself.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(rig.pageURL+"/e2ee/page")))
	waitJS("the page never cross-signed itself", `document.getElementById('status').dataset.state === 'cross-signed' ? 'yes' : ''`, time.Minute)
	marks := eval(`JSON.stringify(window.__e2ee.marks)`)
	t.Logf("page marks, ms from navigation start: %s", marks)
	assert.Equal(t, `{"has_master":true,"has_self_signing":true,"has_user_signing":true}`, eval(`JSON.stringify(window.__e2ee.crossSigned)`))
	csp, err := chromedp.Run(browser, chromedp.Evaluate[string](`fetch(location.href).then(r => r.headers.get('content-security-policy') ?? '')`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Equal(t, pageCSP, csp, "the page's CSP")

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
	type load struct {
		ReadyMS, WasmMS   float64
		Bytes, WasmBytes  float64
		Requests, Decoded float64
	}
	measure := func(name string, clear bool, cond *network.Conditions) load {
		if clear {
			_, err := chromedp.Call(browser, network.ClearBrowserCache, struct{}{})
			require.NoError(t, err)
		}
		rules := []*network.Conditions{}
		if cond != nil {
			rules = append(rules, cond)
		}
		_, err := chromedp.Call(browser, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules})
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(browser, chromedp.Navigate(rig.pageURL+"/e2ee/page?measure=1")))
		waitJS("the page never loaded its crypto ("+name+")", `document.getElementById('status').dataset.state === 'measured' ? 'yes' : ''`, 2*time.Minute)
		var l load
		v, err := chromedp.Run(browser, chromedp.Evaluate[map[string]float64](`(() => {
			const nav = performance.getEntriesByType('navigation')[0];
			const res = performance.getEntriesByType('resource').filter(r => r.name.includes('/e2ee/assets/'));
			const wasm = res.find(r => r.name.endsWith('.wasm'));
			return {
				ready: window.__e2ee.marks.crypto_ready, wasm: window.__e2ee.marks.wasm_ready,
				bytes: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
				wasmBytes: wasm ? wasm.transferSize : -1,
				decoded: nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0),
				requests: 1 + res.length,
			};
		})()`))
		require.NoError(t, err)
		l = load{ReadyMS: v["ready"], WasmMS: v["wasm"], Bytes: v["bytes"], WasmBytes: v["wasmBytes"], Requests: v["requests"], Decoded: v["decoded"]}
		t.Logf("load %-22s: navigation → crypto ready %5.0f ms (wasm instantiated at %5.0f ms); %d requests, %.0f bytes transferred (wasm %.0f), %.0f decoded",
			name, l.ReadyMS, l.WasmMS, int(l.Requests), l.Bytes, l.WasmBytes, l.Decoded)
		assert.Equal(t, "[]", eval(`JSON.stringify(window.__e2ee.errors)`), "the page reported no error (%s)", name)
		return l
	}
	uncached := measure("uncached, unthrottled", true, nil)
	cached := measure("cached, unthrottled", false, nil)
	slowUncached := measure("uncached, Slow 4G", true, slow4G)
	slowCached := measure("cached, Slow 4G", false, slow4G)
	_, err = chromedp.Call(browser, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{}})
	require.NoError(t, err)

	// Subresource integrity: a changed byte in the .wasm (fetch's integrity) or in the shared
	// core module (modulepreload's integrity, then import() of the same URL) stops the page.
	for _, as := range []*pageAsset{assets.Wasm, assets.Core} {
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
	assert.Greater(t, slowUncached.ReadyMS, float64(len(assets.Wasm.gz))/slow4G.DownloadThroughput*1000*0.9, "Slow 4G throttled the wasm's download")
	t.Logf("targets (issue 18): uncached Slow 4G %.1f s (target < 6 s: %v); cached Slow 4G %.2f s (target < 1.5 s: %v)",
		slowUncached.ReadyMS/1000, slowUncached.ReadyMS < 6000, slowCached.ReadyMS/1000, slowCached.ReadyMS < 1500)
}
