//go:build e2eepatient

package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Slow4G is Chrome DevTools' "Slow 4G" preset (the same values as Puppeteer's
// PredefinedNetworkConditions["Slow 4G"], an alias of the former "Fast 3G", crbug 342406608):
// 150 ms × 3.75 latency, 1.6 Mbps × 0.9 down, 750 kbps × 0.9 up, in bytes per second.
var Slow4G = &network.Conditions{Latency: 150 * 3.75, DownloadThroughput: 1.6e6 / 8 * 0.9, UploadThroughput: 750e3 / 8 * 0.9}

// E2EEPageTrouble is what a failed wait on issue 18's patient page reports: its state and the
// errors it kept.
const E2EEPageTrouble = `JSON.stringify({state: document.getElementById('status')?.dataset.state ?? '', errors: window.__e2ee ? window.__e2ee.errors : ['no __e2ee']})`

// E2EEPageLoad is one load of issue 18's patient page (docs/e2ee-to-the-patient.md, step 5):
// milliseconds from navigation start to the crypto being ready and to the wasm instantiated,
// and what Resource Timing says of the navigation and the page's assets.
type E2EEPageLoad struct {
	ReadyMS, WasmMS   float64
	Bytes, WasmBytes  float64 // transferred: all, the wasm alone (0 from the cache)
	Requests, Decoded float64
}

// E2EEPageLoadOptions say how the page is loaded.
type E2EEPageLoadOptions struct {
	// Clear empties the HTTP cache first (V8's wasm code cache goes with it).
	Clear bool
	// Conditions are set before the navigation; nil is unthrottled.
	Conditions *network.Conditions
	// KeepConditions leaves the browser's network conditions as they are: setting them again,
	// even to the same values, releases the throttled requests in flight (measured: a preload
	// halfway through the wasm then finishes at once).
	KeepConditions bool
}

// MeasureE2EEPageLoad navigates browser to pageURL, the patient page with ?measure=1 (it stops
// once the wasm is instantiated and an OlmMachine initialised, with no request to the proxy),
// as opts say. It logs the figures under name and checks the page reported no error.
func MeasureE2EEPageLoad(t testing.TB, browser context.Context, name, pageURL string, opts E2EEPageLoadOptions) E2EEPageLoad {
	t.Helper()
	if opts.Clear {
		if _, err := chromedp.Call(browser, network.ClearBrowserCache, struct{}{}); err != nil {
			t.Fatalf("failed to clear the browser's cache: %v", err)
		}
	}
	if !opts.KeepConditions {
		rules := []*network.Conditions{}
		if opts.Conditions != nil {
			rules = append(rules, opts.Conditions)
		}
		if _, err := chromedp.Call(browser, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules}); err != nil {
			t.Fatalf("failed to set the network conditions: %v", err)
		}
	}
	if err := chromedp.Do(browser, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("failed to open %s: %v", pageURL, err)
	}
	WaitString(t, browser, "the page never loaded its crypto ("+name+")",
		`document.getElementById('status').dataset.state === 'measured' ? 'yes' : ''`, E2EEPageTrouble, 2*time.Minute)
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
	if err != nil {
		t.Fatalf("failed to read the page's load figures: %v", err)
	}
	l := E2EEPageLoad{ReadyMS: v["ready"], WasmMS: v["wasm"], Bytes: v["bytes"], WasmBytes: v["wasmBytes"], Requests: v["requests"], Decoded: v["decoded"]}
	t.Logf("load %-22s: navigation → crypto ready %5.0f ms (wasm instantiated at %5.0f ms); %d requests, %.0f bytes transferred (wasm %.0f), %.0f decoded",
		name, l.ReadyMS, l.WasmMS, int(l.Requests), l.Bytes, l.WasmBytes, l.Decoded)
	if errs := EvalString(t, browser, `JSON.stringify(window.__e2ee.errors)`); errs != "[]" {
		t.Errorf("the page reported errors (%s): %s", name, errs)
	}
	return l
}
