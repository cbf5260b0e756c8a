//go:build e2eepatient

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/securechat/e2ee"
)

// TestE2EERoomInTheBridgeOnSynapse (issue 18, the spike in the bridge; build the binary with
// `-tags goolm,e2eepatient` and point CAREBRIDGE_BIN at it): staff run `!sms e2ee-room` in a
// conversation; the bridge makes the patient-web user (an opaque ID, no phone digits), its
// browser device and an encrypted room with the nurse invited and without the bridge bot.
// The patient's secure chat session reaches the events endpoint under /_carebridge/e2ee/,
// where a to-device message sent to the patient's browser device arrives (the tee on the
// bridge's appservice filed it), and so does the nurse's Megolm message in the secure room,
// which bridgev2 never sees (no decryption attempt, no key request, no status: done-when 6).
// Then the bridge serves the patient page from its own origin (done-when 1): headless
// Chromium, signed in to the secure chat as the patient, opens /_carebridge/e2ee/page, becomes
// the patient's device (cross-signed), decrypts a message from the nurse's Element and replies;
// Element decrypts the reply as sent by the page's device. The sentinels of those messages and
// of the first are nowhere in the bridge's database file, log or config, nor in its process
// memory (done-when 2, for the bridge).
func TestE2EERoomInTheBridgeOnSynapse(t *testing.T) {
	if !slices.Contains(testenv.HomeserverKinds(t), testenv.HomeserverSynapse) {
		t.Skip("Synapse only (MSC4190, MSC2409, MSC3202), and CAREBRIDGE_TEST_HOMESERVER leaves Synapse out")
	}
	// The page's matrix-sdk-crypto-wasm files, for the bridge to serve (it does not start without).
	modules, err := testenv.ElementCryptoAvailable()
	testenv.RequireDep(t, testenv.DepElementCrypto, err)
	t.Setenv(bridge.E2EEWasmDirEnv, filepath.Join(modules, "@matrix-org", "matrix-sdk-crypto-wasm", "pkg"))
	e, nurse, _, ctx := linkedEnv(t, testenv.HomeserverSynapse+"/sqlite", appserviceEncryption)
	require.Contains(t, e.br.Log(), "Built with the e2eepatient spike", "CAREBRIDGE_BIN must be built with -tags goolm,e2eepatient")
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Hello, are my test results back?")
	require.NoError(t, err)
	portalRoom, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)

	// The patient's secure chat session (secure mode, the alert's link, the code).
	_, _, err = nurse.Send(ctx, portalRoom, "!sms secure")
	require.NoError(t, err)
	notice(t, ctx, nurse, "Secure mode")
	_, _, err = nurse.Send(ctx, portalRoom, "Your results are in; please open the secure link.")
	require.NoError(t, err)
	web, linkURL := patientSession(t, ctx, e)

	// Before the room exists the session reaches nothing.
	status, _ := e2eeGet(t, ctx, web, e.br.URL()+"/_carebridge/e2ee/events?timeout=0")
	assert.Equal(t, http.StatusForbidden, status, "a session whose conversation has no secure room")
	noCookie := &http.Client{Timeout: 10 * time.Second}
	status, _ = e2eeGet(t, ctx, noCookie, e.br.URL()+"/_carebridge/e2ee/events?timeout=0")
	assert.Equal(t, http.StatusForbidden, status, "no session")
	status, _ = e2eeGet(t, ctx, web, e.br.URL()+"/_carebridge/e2ee/page")
	assert.Equal(t, http.StatusForbidden, status, "the page, for a session whose conversation has no secure room")

	started := time.Now()
	_, _, err = nurse.Send(ctx, portalRoom, "!sms e2ee-room")
	require.NoError(t, err)
	made, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.MsgType == "m.notice" && strings.Contains(m.Body, "end-to-end encrypted room")
	})
	require.NoError(t, err)
	assert.True(t, made.Encrypted)
	found := regexp.MustCompile(`room (![^\s]+) with the patient's browser user (@[^\s;]+);`).FindStringSubmatch(made.Body)
	require.Len(t, found, 3, made.Body)
	secureRoom, patientWeb := id.RoomID(found[1]), id.UserID(found[2])
	t.Logf("!sms e2ee-room answered in %s", time.Since(started).Round(time.Millisecond))

	// The patient-web user: opaque, in the appservice's namespace, no digits of the number.
	assert.Regexp(t, `^@sms_pw_[0-9a-f]{20}:`, patientWeb.String())
	digits := strings.TrimPrefix(patient, "+")
	for _, part := range []string{digits, digits[1:], digits[len(digits)-7:], digits[len(digits)-4:]} {
		assert.NotContains(t, patientWeb.Localpart(), part, "the patient-web user's ID holds the phone's digits")
	}
	assert.NotEqual(t, id.UserID(e.patientGhost(t, ctx, patient)), patientWeb, "not the SMS ghost")

	_, err = nurse.WaitJoined(ctx, secureRoom.String())
	require.NoError(t, err)
	client := e.hs.Login(t, "nurse", "nurse-password-1")
	bot := id.UserID("@smsbot:" + e.hs.ServerName())
	members, err := client.JoinedMembers(ctx, secureRoom)
	require.NoError(t, err)
	joined := make([]id.UserID, 0, len(members.Joined))
	for u := range members.Joined {
		joined = append(joined, u)
	}
	assert.ElementsMatch(t, []id.UserID{patientWeb, id.UserID(e.nurseID)}, joined, "the nurse and the patient-web user, not the bot")
	var enc event.EncryptionEventContent
	require.NoError(t, client.StateEvent(ctx, secureRoom, event.StateEncryption, "", &enc))
	assert.Equal(t, id.AlgorithmMegolmV1, enc.Algorithm)

	// The proxy, under the session, as the patient's device: keys of a member, not /sync.
	proxy := e.br.URL() + "/_carebridge/e2ee/_matrix/client/v3/"
	status, body := e2eePost(t, ctx, web, proxy+"keys/query", `{"device_keys":{"`+e.nurseID+`":[]}}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var queried struct {
		DeviceKeys map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	}
	require.NoError(t, json.Unmarshal(body, &queried))
	assert.NotEmpty(t, queried.DeviceKeys[id.UserID(e.nurseID)], "the nurse's device keys, through the proxy")
	status, _ = e2eePost(t, ctx, web, proxy+"keys/query", `{"device_keys":{"`+e.adminID+`":[]}}`)
	assert.Equal(t, http.StatusForbidden, status, "keys of someone outside the secure room")
	status, _ = e2eeGet(t, ctx, web, proxy+"sync")
	assert.Equal(t, http.StatusForbidden, status, "/sync through the proxy")
	status, _ = e2eePost(t, ctx, noCookie, proxy+"keys/query", `{"device_keys":{"`+e.nurseID+`":[]}}`)
	assert.Equal(t, http.StatusForbidden, status, "the proxy without a session")

	// The tee files a to-device message to the patient's browser device; the session reads it.
	var first e2eeBatch
	status, body = e2eeGet(t, ctx, web, e.br.URL()+"/_carebridge/e2ee/events?timeout=0")
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &first))
	device := patientWebDevice(t, ctx, e, patientWeb)
	_, err = client.SendToDevice(ctx, event.NewEventType("com.carebridge.test.ping"), &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{patientWeb: {device: {Raw: map[string]any{"n": 18}}}},
	})
	require.NoError(t, err)
	got := pollE2EE(t, ctx, web, e.br.URL(), first.NextBatch, func(b e2eeBatch) bool {
		for _, td := range b.ToDevice.Events {
			if td.Type == "com.carebridge.test.ping" && td.Sender == id.UserID(e.nurseID) {
				return true
			}
		}
		return false
	})

	// The nurse's Megolm message in the secure room reaches the page, and only the page.
	sentinel := "E2EE-SENTINEL-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	eventID, _, err := nurse.Send(ctx, secureRoom.String(), "Your potassium is "+sentinel)
	require.NoError(t, err)
	pollE2EE(t, ctx, web, e.br.URL(), got.NextBatch, func(b e2eeBatch) bool {
		for _, raw := range b.RoomEvents {
			var evt struct {
				Type    string `json:"type"`
				EventID string `json:"event_id"`
			}
			if json.Unmarshal(raw, &evt) == nil && evt.EventID == eventID {
				assert.Equal(t, "m.room.encrypted", evt.Type)
				assert.NotContains(t, string(raw), sentinel)
				return true
			}
		}
		return false
	})
	// bridgev2's decryption waits 3 s before it asks for keys (22 s more before its
	// failure status): give it the first part, then look.
	time.Sleep(4 * time.Second)
	log := e.br.Log()
	assert.False(t, strings.Contains(log, eventID), "bridgev2 handled the secure room's event %s", eventID)
	assert.False(t, strings.Contains(log, "m.room_key_request"), "the bridge sent a room key request")
	assert.False(t, strings.Contains(log, "Couldn't find session"), "bridgev2 tried to decrypt a secure-room event")
	msgs, err := client.Messages(ctx, secureRoom, "", "", mautrix.DirectionBackward, nil, 100)
	require.NoError(t, err)
	for _, evt := range msgs.Chunk {
		assert.NotEqual(t, bot, evt.Sender, "the bot sent %s into the secure room", evt.Type)
		assert.NotEqual(t, "com.beeper.message_send_status", evt.Type.Type)
	}
	assert.Empty(t, nurse.Undecryptable())

	// The page, from the bridge's origin, in Chromium: the patient's device (done-when 1).
	sentinels := append([]string{sentinel}, patientPageInChromium(t, ctx, e, web, secureRoom, patientWeb, device, eventID)...)
	// The first visit on Slow 4G, with and without the code page's preloads (done-when 7).
	codePagePreloadsOnSlow4G(t, e, web, linkURL)

	// Done-when 2 for the bridge: the sentinels nowhere in what it keeps or holds.
	dbPath := strings.TrimPrefix(strings.SplitN(e.db.URI, "?", 2)[0], "file:")
	for _, path := range []string{dbPath, dbPath + "-wal", dbPath + "-shm", e.br.LogPath(), e.br.ConfigPath()} {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) && path != dbPath && path != e.br.LogPath() {
			continue
		}
		require.NoError(t, err)
		for _, s := range sentinels {
			assert.Zero(t, bytes.Count(data, []byte(s)), "%s holds the sentinel %q", path, s)
		}
	}
	var scanned int64
	for _, s := range sentinels {
		var inMemory int
		inMemory, scanned = scanProcessMemory(t, e.br.Pid(), []byte(s))
		assert.Zero(t, inMemory, "the bridge's memory holds the sentinel %q", s)
	}
	// The scan finds what the bridge does hold: its as_token, from its config.
	control, _ := scanProcessMemory(t, e.br.Pid(), asToken(t, e))
	assert.Positive(t, control, "the memory scan finds the bridge's as_token")
	assert.False(t, strings.Contains(e.br.Log(), `"level":"error"`), "the bridge logged an error")
	t.Logf("%d sentinels: 0 in the database (%s), log, config; 0 in %d MiB of the bridge's memory", len(sentinels), dbPath, scanned>>20)
}

// patientPageInChromium opens the patient page the bridge serves, in headless Chromium signed
// in with web's session: what the bridge serves (CSP, SRI values matching the bytes, immutable
// gzipped assets, the signed-out answer), then the page cross-signs its device, decrypts the
// nurse's Element message and replies, and Element decrypts the reply as from the page's
// device. earlier is matrix-nio's message, sent before the page's device had keys. It returns
// the sentinels of both messages.
func patientPageInChromium(t *testing.T, ctx context.Context, e *env, web *http.Client, room id.RoomID, patientWeb id.UserID, device id.DeviceID, earlier string) []string {
	t.Helper()
	pageURL := e.br.URL() + "/_carebridge/e2ee/page"

	// Signed out, the page is the secure chat's usual answer (as its chat page's), not the page.
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	answer := func(u string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		require.NoError(t, err)
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	outStatus, outLocation := answer(pageURL)
	chatStatus, chatLocation := answer(e.br.URL() + securechat.ChatPath)
	assert.Equal(t, http.StatusSeeOther, outStatus, "signed out: redirected")
	assert.Equal(t, chatLocation, outLocation, "signed out: the secure chat's own answer")
	assert.Equal(t, chatStatus, outStatus)

	// What the bridge serves: the page (CSP, never cached) and each asset it names, whose
	// bytes match the page's SRI value, immutable and gzipped, with no session needed.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	require.NoError(t, err)
	resp, err := web.Do(req)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	assert.Equal(t, e2ee.PageCSP, resp.Header.Get("Content-Security-Policy"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self' 'wasm-unsafe-eval';")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Contains(t, string(page), `data-device="`+device.String()+`"`)
	assert.Contains(t, string(page), e.nurseID, "the page opens knowing the room's members (the nurse joined before it)")
	sri := regexp.MustCompile(`(?:href|src|data-wasm)="(/_carebridge/e2ee/assets/[^"]+)" (?:integrity|data-wasm-integrity)="(sha384-[^"]+)"`).FindAllStringSubmatch(string(page), -1)
	require.Len(t, sri, 4, "the page names its module, the crypto core, the bindings and the wasm with SRI values")
	assetBytes := map[string]int{}
	for _, m := range sri {
		m[1], m[2] = html.UnescapeString(m[1]), html.UnescapeString(m[2]) // html/template writes '+' as &#43;
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.br.URL()+m[1], nil)
		require.NoError(t, err)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, m[1])
		assert.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"), m[1])
		assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), m[1])
		zr, err := gzip.NewReader(resp.Body)
		require.NoError(t, err)
		body, err := io.ReadAll(zr)
		resp.Body.Close()
		require.NoError(t, err)
		sum := sha512.Sum384(body)
		assert.Equal(t, m[2], "sha384-"+base64.StdEncoding.EncodeToString(sum[:]), "the SRI value of %s matches its bytes", m[1])
		assetBytes[path.Ext(m[1])] += len(body)
	}
	t.Logf("page assets served by the bridge, decoded: %v bytes", assetBytes)

	// Chromium, signed in with the patient's session cookie.
	browser := signedInBrowser(t, e, web)
	eval := func(expr string) string { return testenv.EvalString(t, browser, expr) }
	waitJS := func(what, expr string, limit time.Duration) string {
		return testenv.WaitString(t, browser, what, expr,
			`JSON.stringify({state: document.getElementById('status')?.dataset.state ?? '', errors: window.__e2ee ? window.__e2ee.errors : ['no __e2ee']})`, limit)
	}
	started := time.Now()
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(pageURL)))
	waitJS("the page never cross-signed itself", `document.getElementById('status').dataset.state === 'cross-signed' ? 'yes' : ''`, time.Minute)
	t.Logf("bridge's page: navigation → cross-signed device in %s; marks %s", time.Since(started).Round(time.Millisecond), eval(`JSON.stringify(window.__e2ee.marks)`))
	assert.Equal(t, `{"has_master":true,"has_self_signing":true,"has_user_signing":true}`, eval(`JSON.stringify(window.__e2ee.crossSigned)`))
	csp, err := chromedp.Run(browser, chromedp.Evaluate[string](`fetch(location.href).then(r => r.headers.get('content-security-policy') ?? '')`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Equal(t, e2ee.PageCSP, csp, "the CSP, as the browser got it")
	// The SRI values the browser holds are the ones checked above against the served bytes.
	inPage := eval(`JSON.stringify([...document.querySelectorAll('[integrity]')].map(el => [el.getAttribute('href') ?? el.getAttribute('src'), el.integrity]).concat([[document.getElementById('app').dataset.wasm, document.getElementById('app').dataset.wasmIntegrity]]).sort())`)
	want := make([][2]string, 0, len(sri))
	for _, m := range sri {
		want = append(want, [2]string{m[1], m[2]})
	}
	slices.SortFunc(want, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	wantJSON, _ := json.Marshal(want)
	assert.JSONEq(t, string(wantJSON), inPage, "the browser's SRI values")

	// The nurse's Element (cross-signed: the page shares only with signed devices) writes.
	staff := testenv.StartElementAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1", testenv.ElementOptions{CrossSign: true})
	_, err = staff.WaitJoined(ctx, room.String())
	require.NoError(t, err)
	staffSentinel := "E2EE-PAGE-STAFF-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	staffEvent, sentAt, err := staff.Send(ctx, room.String(), "Your appointment is at 9. "+staffSentinel)
	require.NoError(t, err)
	sel := fmt.Sprintf(`document.querySelector('#messages li.theirs[data-event-id="%s"]')`, staffEvent)
	text := waitJS("the page never showed the nurse's message decrypted", sel+`?.textContent ?? ''`, time.Minute)
	t.Logf("nurse's Element send → decrypted in the bridge's page: %s", time.Since(sentAt).Round(time.Millisecond))
	assert.Equal(t, "Your appointment is at 9. "+staffSentinel, text)
	assert.Equal(t, staff.DeviceID, eval(sel+`.dataset.senderDevice`), "the room key came from the nurse's Element device")
	assert.Equal(t, e.nurseID, eval(sel+`.dataset.sender`))

	// The patient replies in the page; Element decrypts it as from the page's device.
	patientSentinel := "E2EE-PAGE-PATIENT-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	replyStarted := time.Now()
	require.NoError(t, chromedp.Do(browser, chromedp.SendKeys(chromedp.ID("text"), "See you then. "+patientSentinel), chromedp.Click(chromedp.ID("send"))))
	replyID := waitJS("the page never sent the reply", `document.querySelector('#messages li.mine')?.dataset.eventId ?? ''`, time.Minute)
	msg, err := staff.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.EventID == replyID })
	require.NoError(t, err, "the nurse's Element never decrypted the page's reply")
	t.Logf("patient's reply typed → decrypted in Element: %s; shield %q", time.Since(replyStarted).Round(time.Millisecond), msg.Shield)
	assert.Equal(t, "See you then. "+patientSentinel, msg.Body)
	assert.Equal(t, patientWeb.String(), msg.Sender)
	assert.True(t, msg.Encrypted)
	assert.Equal(t, device.String(), msg.SenderDevice, "Element attributes the reply to the page's device")
	assert.Equal(t, "none", msg.Shield, "the page's device is signed by its owner")
	assert.Empty(t, staff.Undecryptable())
	stats := eval(`JSON.stringify(window.__e2ee.device.stats())`)
	t.Logf("page stats: %s", stats)
	assert.Contains(t, stats, `"refused":0`, "the bridge's proxy refused none of the page's requests")
	assert.Equal(t, "[]", eval(`JSON.stringify(window.__e2ee.errors)`), "the page reported no error")
	// The one event the page cannot read is matrix-nio's, sent before the page's device had
	// keys (the inbox still held it, unacknowledged, for the page's first poll).
	undecrypted := eval(`(() => {
		const dec = new Set(window.__e2ee.reports.filter(r => r.type === 'decrypted').map(r => r.event_id));
		return JSON.stringify(window.__e2ee.reports.filter(r => r.type === 'room_event' && r.event_type === 'm.room.encrypted' && !dec.has(r.event_id)).map(r => r.event_id));
	})()`)
	assert.Contains(t, []string{"[]", `["` + earlier + `"]`}, undecrypted, "the page left undecrypted only matrix-nio's earlier message")
	t.Logf("page: undecrypted %s (matrix-nio's earlier message %s)", undecrypted, earlier)
	return []string{staffSentinel, patientSentinel}
}

// signedInBrowser is headless Chromium with a fresh profile holding web's cookies (the
// patient's secure chat session) for the bridge's address.
func signedInBrowser(t *testing.T, e *env, web *http.Client) context.Context {
	t.Helper()
	jarURL, err := url.Parse(e.br.URL())
	require.NoError(t, err)
	cookies := web.Jar.Cookies(jarURL)
	require.NotEmpty(t, cookies, "the patient's session cookie")
	browser := testenv.NewBrowser(t, true)
	yes := true
	for _, c := range cookies {
		_, err = chromedp.Call(browser, network.SetCookie, network.SetCookieParams{Name: c.Name, Value: c.Value, URL: e.br.URL() + "/",
			Path: "/", HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict})
		require.NoError(t, err)
	}
	return browser
}

// codePagePreloadsOnSlow4G measures a patient's first visit on Slow 4G (issue 18, done-when 7:
// < 6 s to the crypto on a first visit): each time a fresh Chromium profile, signed in, throttled
// from the start. Without preloads it opens the patient page directly; with them it opens the
// secure chat's code page (which preloads the page's wasm and modules), stays there as long as a
// patient waits for the texted code and types it (10 s, 20 s), then goes to the patient page.
// Asserted from Chromium's network log and Resource Timing: the code page preloaded the wasm
// (within 20 s on Slow 4G), and where that preload had finished, the patient page's wasm came
// from the HTTP cache, not over the network again; the figures are logged, not asserted (the
// targets are the report's).
func codePagePreloadsOnSlow4G(t *testing.T, e *env, web *http.Client, linkURL string) {
	t.Helper()
	pageURL := e.br.URL() + "/_carebridge/e2ee/page?measure=1"
	codeURL := linkURL + "/verify"
	noPreload := testenv.MeasureE2EEPageLoad(t, signedInBrowser(t, e, web), "first visit, Slow 4G", pageURL,
		testenv.E2EEPageLoadOptions{Conditions: testenv.Slow4G})
	assert.Greater(t, noPreload.WasmBytes, float64(1<<20), "without the code page, the wasm comes over the network")

	for _, wait := range []time.Duration{20 * time.Second, 10 * time.Second} {
		browser := signedInBrowser(t, e, web)
		type wasmRequest struct {
			document                       string
			fromCache, responded, finished bool
		}
		var mu sync.Mutex
		requests := map[network.RequestID]*wasmRequest{}
		var order []network.RequestID
		require.NoError(t, chromedp.Listen(browser, func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch ev := ev.(type) {
			case *network.EventRequestWillBeSent:
				if strings.HasSuffix(ev.Request.URL, ".wasm") && strings.Contains(ev.Request.URL, "/_carebridge/e2ee/assets/") {
					requests[ev.RequestID] = &wasmRequest{document: ev.DocumentURL}
					order = append(order, ev.RequestID)
				}
			case *network.EventResponseReceived:
				if r := requests[ev.RequestID]; r != nil {
					r.responded, r.fromCache = true, ev.Response.FromDiskCache || ev.Response.FromPrefetchCache
				}
			case *network.EventRequestServedFromCache:
				if r := requests[ev.RequestID]; r != nil {
					r.fromCache = true
				}
			case *network.EventLoadingFinished:
				if r := requests[ev.RequestID]; r != nil {
					r.finished = true
				}
			}
		}))
		_, err := chromedp.Call(browser, network.Enable, network.EnableParams{})
		require.NoError(t, err)
		_, err = chromedp.Call(browser, network.EmulateNetworkConditionsByRule,
			network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{testenv.Slow4G}})
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(browser, chromedp.Navigate(codeURL)))
		codeShown := testenv.EvalString(t, browser, `(() => {
			const nav = performance.getEntriesByType('navigation')[0];
			const fcp = performance.getEntriesByName('first-contentful-paint')[0];
			return JSON.stringify({dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd), first_paint_ms: fcp ? Math.round(fcp.startTime) : -1,
				preloads: document.querySelectorAll('link[rel=preload][as=fetch][integrity], link[rel=modulepreload][integrity]').length});
		})()`)
		time.Sleep(wait)
		mu.Lock()
		preloaded := len(order) == 1 && requests[order[0]].finished
		mu.Unlock()
		name := fmt.Sprintf("first visit, %s code", wait)
		// Still Slow 4G: the conditions are not set again (that would release the preload in flight).
		l := testenv.MeasureE2EEPageLoad(t, browser, name, pageURL, testenv.E2EEPageLoadOptions{KeepConditions: true})
		mu.Lock()
		var fromCode, fromPage []*wasmRequest
		for _, id := range order {
			r := requests[id]
			if strings.Contains(r.document, "/verify") {
				fromCode = append(fromCode, r)
			} else {
				fromPage = append(fromPage, r)
			}
		}
		mu.Unlock()
		t.Logf("code page on Slow 4G (with its preloads): %s; %s on it, the wasm's preload finished there: %v; then patient page → crypto ready %.0f ms, wasm transferred %.0f bytes",
			codeShown, wait, preloaded, l.ReadyMS, l.WasmBytes)
		assert.Contains(t, codeShown, `"preloads":4`, "the code page preloads the page's three modules and its wasm")
		assert.Len(t, fromCode, 1, "the code page requested the wasm once (its preload)")
		assert.Len(t, fromPage, 1, "the patient page requested the wasm once")
		// A preload the patient leaves before it finishes is cut short with the code page, and
		// the patient page downloads the whole wasm again (measured at 10 s; the figure is logged).
		if preloaded && len(fromPage) == 1 {
			assert.True(t, fromPage[0].responded && fromPage[0].fromCache, "the patient page's wasm came from the HTTP cache (%s)", wait)
			assert.Zero(t, l.WasmBytes, "the patient page did not download the wasm again (%s)", wait)
		}
		if wait == 20*time.Second {
			assert.True(t, preloaded, "on Slow 4G the wasm's preload finishes within 20 s on the code page")
		}
		assert.Equal(t, noPreload.Requests, l.Requests)
	}
}

type e2eeBatch struct {
	NextBatch string `json:"next_batch"`
	ToDevice  struct {
		Events []struct {
			Sender  id.UserID       `json:"sender"`
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
	RoomEvents []json.RawMessage `json:"room_events"`
}

func e2eeGet(t *testing.T, ctx context.Context, c *http.Client, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func e2eePost(t *testing.T, ctx context.Context, c *http.Client, u, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// pollE2EE long-polls the events endpoint from since until a batch matches.
func pollE2EE(t *testing.T, ctx context.Context, c *http.Client, base, since string, match func(e2eeBatch) bool) e2eeBatch {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		status, body := e2eeGet(t, ctx, c, base+"/_carebridge/e2ee/events?timeout=5000&since="+url.QueryEscape(since))
		require.Equal(t, http.StatusOK, status, string(body))
		var b e2eeBatch
		require.NoError(t, json.Unmarshal(body, &b))
		if match(b) {
			return b
		}
		since = b.NextBatch
	}
	t.Fatal("the events endpoint never gave what was expected")
	return e2eeBatch{}
}

// patientWebDevice is the patient-web user's one device, as the homeserver lists it to the
// appservice masquerading as that user.
func patientWebDevice(t *testing.T, ctx context.Context, e *env, user id.UserID) id.DeviceID {
	t.Helper()
	as, err := mautrix.NewClient(e.hs.URL(), user, string(asToken(t, e)))
	require.NoError(t, err)
	as.SetAppServiceUserID = true
	devices, err := as.GetDevicesInfo(ctx)
	require.NoError(t, err)
	require.Len(t, devices.Devices, 1, "one browser device")
	assert.Regexp(t, `^PW[0-9A-F]{10}$`, string(devices.Devices[0].DeviceID))
	return devices.Devices[0].DeviceID
}

// patientSession opens the patient's secure chat session over HTTP, as the page's forms do:
// the alert's link, "send me a code", the texted code. It returns a client with the cookie and
// the link's address on the bridge.
func patientSession(t *testing.T, ctx context.Context, e *env) (*http.Client, string) {
	t.Helper()
	alert, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "secure message")
	})
	require.NoError(t, err)
	link := regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]+`).FindString(alert.Body)
	require.NotEmpty(t, link, alert.Body)
	parsed, err := url.Parse(link)
	require.NoError(t, err)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	linkURL := e.br.URL() + parsed.Path
	_, page := e2eeGet(t, ctx, c, linkURL)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	require.NotNil(t, csrf, "the link page has a form token")
	post := func(path string, form url.Values) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, linkURL+path, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	post("/code", url.Values{"csrf": {string(csrf[1])}})
	codeSMS, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "your code is")
	})
	require.NoError(t, err)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(codeSMS.Body)
	require.NotEmpty(t, code)
	post("/verify", url.Values{"csrf": {string(csrf[1])}, "code": {code}})
	return c, linkURL
}

// scanProcessMemory counts needle in the readable memory of process pid (/proc/pid/mem,
// which root may read) and says how many bytes it read.
func scanProcessMemory(t *testing.T, pid int, needle []byte) (count int, scanned int64) {
	t.Helper()
	require.NotZero(t, pid)
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	require.NoError(t, err)
	defer maps.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	require.NoError(t, err)
	defer mem.Close()
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[1], "r") {
			continue
		}
		var start, end uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &start, &end); err != nil {
			continue
		}
		buf := make([]byte, end-start)
		n, _ := mem.ReadAt(buf, int64(start))
		count += bytes.Count(buf[:n], needle)
		scanned += int64(n)
	}
	require.NoError(t, sc.Err())
	require.Positive(t, scanned)
	return count, scanned
}
