package twiliosim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/twiliosim"
	"github.com/carebridge/carebridge/sms"
)

const (
	simBase    = "/_carebridge/simulator"
	simClinic  = "+15550001111"
	simPatient = "+15551234567"
)

var (
	simMessageSIDPattern = regexp.MustCompile(`^SM[0-9a-f]{32}$`)
	simMediaSIDPattern   = regexp.MustCompile(`^MM[0-9a-f]{32}$`)
	simCSRFPattern       = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
)

// newSimulator builds a simulator that is closed when the test ends.
func newSimulator(t *testing.T, opts twiliosim.Options) *twiliosim.Simulator {
	t.Helper()
	sim := twiliosim.New(opts)
	t.Cleanup(sim.Close)
	return sim
}

// simHarness is a simulator behind an httptest server, recording what it delivers.
type simHarness struct {
	sim    *twiliosim.Simulator
	srv    *httptest.Server
	client *http.Client

	mu         sync.Mutex
	delivered  []url.Values
	deliverErr error
}

func newSimHarness(t *testing.T) *simHarness {
	t.Helper()
	h := &simHarness{}
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	h.sim = newSimulator(t, twiliosim.Options{
		BasePath:    simBase,
		PublicBase:  h.srv.URL,
		StatusDelay: 10 * time.Millisecond,
		Deliver: func(ctx context.Context, form url.Values) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.deliverErr != nil {
				return h.deliverErr
			}
			h.delivered = append(h.delivered, form)
			return nil
		},
	})
	mux.Handle(simBase+"/", h.sim.Handler())
	h.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return h
}

func (h *simHarness) deliveries() []url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]url.Values(nil), h.delivered...)
}

func (h *simHarness) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := h.client.Get(h.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func (h *simHarness) csrf(t *testing.T) string {
	t.Helper()
	resp, page := h.get(t, simBase+"/phone/"+simPatient)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	m := simCSRFPattern.FindStringSubmatch(page)
	require.NotNil(t, m, "the page has no CSRF field")
	return m[1]
}

type simPhoto struct {
	name, contentType string
	data              []byte
}

// postSend posts the send form as a browser does (multipart), without following redirects.
func (h *simHarness) postSend(t *testing.T, patient string, fields map[string]string, photo *simPhoto) (*http.Response, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, mw.WriteField(k, v))
	}
	if photo != nil {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="photo"; filename="`+photo.name+`"`)
		hdr.Set("Content-Type", photo.contentType)
		part, err := mw.CreatePart(hdr)
		require.NoError(t, err)
		_, err = part.Write(photo.data)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+simBase+"/phone/"+patient+"/send", &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := h.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// htmlPlus is a number as html/template writes it in a page: "+" becomes "&#43;", which
// browsers read back as "+".
func htmlPlus(s string) string { return strings.ReplaceAll(s, "+", "&#43;") }

func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func TestSimulatorSendStoresAndValidates(t *testing.T) {
	ctx := context.Background()
	sim := newSimulator(t, twiliosim.Options{BasePath: simBase})
	var provider sms.Provider = sim
	sent, err := provider.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, Body: "Your appointment is at 3pm.", StatusCallback: "https://bridge.example/status"})
	require.NoError(t, err)
	assert.Regexp(t, simMessageSIDPattern, sent.SID)
	assert.Equal(t, "queued", sent.Status)
	sentMMS, err := provider.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, MediaURLs: []string{"https://bridge.example/media/tok/scan.png"}})
	require.NoError(t, err)
	assert.Regexp(t, simMediaSIDPattern, sentMMS.SID)

	inbox := sim.Inbox(simPatient)
	require.Len(t, inbox, 2)
	assert.Equal(t, sent.SID, inbox[0].SID)
	assert.Equal(t, simClinic, inbox[0].From)
	assert.Equal(t, simPatient, inbox[0].To)
	assert.Equal(t, "Your appointment is at 3pm.", inbox[0].Body)
	assert.Equal(t, "https://bridge.example/status", inbox[0].StatusCallback)
	assert.False(t, inbox[0].Time.IsZero())
	assert.Equal(t, []string{"https://bridge.example/media/tok/scan.png"}, inbox[1].MediaURLs)
	assert.Empty(t, sim.Inbox("+15559999999"))

	// The inbox is a copy.
	inbox[1].MediaURLs[0] = "changed"
	assert.Equal(t, "https://bridge.example/media/tok/scan.png", sim.Inbox(simPatient)[1].MediaURLs[0])

	for _, tc := range []struct {
		name string
		msg  sms.OutboundMessage
		code int
	}{
		{"national number", sms.OutboundMessage{From: simClinic, To: "5551234567", Body: "hi"}, 21211},
		{"number with spaces", sms.OutboundMessage{From: simClinic, To: "+1 555 123 4567", Body: "hi"}, 21211},
		{"empty", sms.OutboundMessage{From: simClinic, To: simPatient}, 21602},
		{"too long", sms.OutboundMessage{From: simClinic, To: simPatient, Body: strings.Repeat("a", 1601)}, 21617},
		{"too long in characters", sms.OutboundMessage{From: simClinic, To: simPatient, Body: strings.Repeat("é", 1601)}, 21617},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sim.Send(ctx, &tc.msg)
			var sendErr *sms.SendError
			require.ErrorAs(t, err, &sendErr)
			assert.Equal(t, tc.code, sendErr.Code)
			assert.False(t, sendErr.Transient())
		})
	}
	_, err = sim.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, Body: strings.Repeat("é", 1600)})
	require.NoError(t, err, "1600 characters are allowed, whatever their bytes")
	assert.Len(t, sim.Inbox(simPatient), 3, "refused texts are not stored")
}

func TestSimulatorInboxIsBounded(t *testing.T) {
	sim := newSimulator(t, twiliosim.Options{})
	for i := range 505 {
		_, err := sim.Send(context.Background(), &sms.OutboundMessage{From: simClinic, To: simPatient, Body: "text #" + strconv.Itoa(i)})
		require.NoError(t, err)
	}
	inbox := sim.Inbox(simPatient)
	require.Len(t, inbox, 500)
	assert.True(t, strings.HasSuffix(inbox[0].Body, "#5"), inbox[0].Body)
	assert.True(t, strings.HasSuffix(inbox[499].Body, "#504"), inbox[499].Body)
}

func TestSimulatorAccountsAndNumbers(t *testing.T) {
	ctx := context.Background()
	sim := newSimulator(t, twiliosim.Options{})
	require.NoError(t, sim.CheckAccount(ctx))
	assert.Regexp(t, `^AC[0-9a-f]{32}$`, twiliosim.DemoAccountSID)
	assert.Regexp(t, `^[0-9a-f]{32}$`, twiliosim.DemoAuthToken)

	acct := sim.Account("AC"+strings.Repeat("1a", 16), strings.Repeat("b2", 16))
	require.NoError(t, acct.CheckAccount(ctx))
	for _, bad := range [][2]string{
		{"AC123", strings.Repeat("b2", 16)},
		{"XX" + strings.Repeat("1a", 16), strings.Repeat("b2", 16)},
		{"AC" + strings.Repeat("1a", 16), "not-a-token"},
		{"", ""},
	} {
		assert.ErrorIs(t, sim.Account(bad[0], bad[1]).CheckAccount(ctx), sms.ErrBadCredentials, bad)
	}

	n1, err := acct.LookupNumber(ctx, simClinic)
	require.NoError(t, err)
	assert.Regexp(t, `^PN[0-9a-f]{32}$`, n1.SID)
	assert.Equal(t, simClinic, n1.E164)
	n2, err := newSimulator(t, twiliosim.Options{}).Account("AC"+strings.Repeat("1a", 16), strings.Repeat("b2", 16)).LookupNumber(ctx, simClinic)
	require.NoError(t, err)
	assert.Equal(t, n1.SID, n2.SID, "the SID is stable across runs")
	_, err = acct.LookupNumber(ctx, "555-0001")
	assert.ErrorIs(t, err, sms.ErrNumberNotOwned)

	require.NoError(t, acct.ConfigureWebhooks(ctx, n1.SID, sms.NumberWebhooks{SMSURL: "https://bridge.example/_carebridge/twilio/login/inbound"}))
	again, err := acct.LookupNumber(ctx, simClinic)
	require.NoError(t, err)
	assert.Equal(t, "https://bridge.example/_carebridge/twilio/login/inbound", again.SMSURL)
	var sendErr *sms.SendError
	require.ErrorAs(t, acct.ConfigureWebhooks(ctx, "PN"+strings.Repeat("0", 32), sms.NumberWebhooks{SMSURL: "https://bridge.example/x"}), &sendErr)
	assert.Equal(t, 20404, sendErr.Code)
	assert.Error(t, acct.ConfigureWebhooks(ctx, n1.SID, sms.NumberWebhooks{SMSURL: "not a url"}))
}

func TestSimulatorPageEscapesAndLinks(t *testing.T) {
	h := newSimHarness(t)
	ctx := context.Background()
	for _, body := range []string{
		"<script>alert(1)</script>",
		`<img src=x onerror=alert(1)>`,
		"Your secure message: https://clinic.example/s/abc?x=1&y=2. Reply STOP to opt out.",
		"javascript:alert(1) and http://a.example/(paren)",
	} {
		_, err := h.sim.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, Body: body})
		require.NoError(t, err)
	}
	_, err := h.sim.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, MediaURLs: []string{
		h.srv.URL + "/_carebridge/media/tok1/photo.jpg", h.srv.URL + "/_carebridge/media/tok2/results.pdf"}})
	require.NoError(t, err)

	resp, page := h.get(t, simBase+"/phone/"+simPatient)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'self'")
	assert.Contains(t, csp, "style-src 'self'")
	assert.Contains(t, csp, "form-action 'self'")
	assert.Contains(t, csp, "frame-ancestors 'none'")
	assert.Contains(t, csp, "img-src 'self' data:")
	assert.Contains(t, page, "Simulated phone — no real SMS is sent")

	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Contains(t, page, "&lt;img src=x onerror=alert(1)&gt;")
	assert.NotContains(t, page, "<script>alert")
	assert.NotContains(t, page, "<img src=x")
	assert.NotContains(t, page, "onerror=alert(1)>")
	assert.NotContains(t, page, `href="javascript`)

	assert.Contains(t, page, `<a href="https://clinic.example/s/abc?x=1&amp;y=2" rel="noopener noreferrer" target="_blank">https://clinic.example/s/abc?x=1&amp;y=2</a>. Reply STOP`,
		"the URL is a link, without the sentence's full stop")
	assert.Contains(t, page, `<a href="http://a.example/%28paren%29"`)
	assert.Contains(t, page, `<img src="`+h.srv.URL+`/_carebridge/media/tok1/photo.jpg"`)
	assert.Contains(t, page, `>Attachment: results.pdf</a>`)
	assert.Contains(t, page, `<form method="get" action="`+simBase+`/switch">`)
	assert.Contains(t, page, `id="to" name="to" type="tel" value="`+htmlPlus(simClinic)+`"`, "the clinic that texted is the default recipient")
	assert.Contains(t, page, `<option value="`+htmlPlus(simClinic)+`">`)

	// The assets the page loads are served, same-origin.
	for _, asset := range []string{"phone.css", "phone.js"} {
		assert.Contains(t, page, simBase+"/assets/"+asset)
		resp, _ := h.get(t, simBase+"/assets/"+asset)
		assert.Equal(t, http.StatusOK, resp.StatusCode, asset)
	}
	resp, _ = h.get(t, simBase+"/assets/phone.html")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// The home page opens the most recent patient.
	resp, _ = h.get(t, simBase+"/")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, simBase+"/phone/"+simPatient, resp.Header.Get("Location"))
}

func TestSimulatorHomeWithoutTexts(t *testing.T) {
	h := newSimHarness(t)
	resp, page := h.get(t, simBase+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "Simulated phone — no real SMS is sent")
	assert.Contains(t, page, `name="phone"`)
	assert.NotContains(t, page, `name="csrf"`, "no patient, no send form")
	assert.NotContains(t, page, "Text the clinic at", "no clinic number linked yet")

	// Once the clinic number is linked, the first page says which number to text.
	_, err := h.sim.Account("AC"+strings.Repeat("1a", 16), strings.Repeat("b2", 16)).LookupNumber(context.Background(), simClinic)
	require.NoError(t, err)
	_, page = h.get(t, simBase+"/")
	assert.Contains(t, page, `Text the clinic at <strong><span class="nowrap">(555) 000-1111</span></strong>`)
}

func TestSimulatorSendFormDeliversTwilioForm(t *testing.T) {
	h := newSimHarness(t)
	ctx := context.Background()
	_, err := h.sim.LookupNumber(ctx, simClinic)
	require.NoError(t, err)

	resp, _ := h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "to": simClinic, "body": "Hi, can I move my appointment?\r\nThanks"}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, simBase+"/phone/"+simPatient+"?sent=1#latest", resp.Header.Get("Location"))

	got := h.deliveries()
	require.Len(t, got, 1)
	form := got[0]
	assert.Regexp(t, simMessageSIDPattern, form.Get("MessageSid"))
	assert.Equal(t, form.Get("MessageSid"), form.Get("SmsSid"))
	assert.Equal(t, form.Get("MessageSid"), form.Get("SmsMessageSid"))
	assert.Equal(t, twiliosim.DemoAccountSID, form.Get("AccountSid"))
	assert.Equal(t, simPatient, form.Get("From"))
	assert.Equal(t, simClinic, form.Get("To"))
	assert.Equal(t, "Hi, can I move my appointment?\nThanks", form.Get("Body"))
	assert.Equal(t, "0", form.Get("NumMedia"))
	assert.Equal(t, "1", form.Get("NumSegments"))
	assert.Equal(t, "received", form.Get("SmsStatus"))
	assert.Equal(t, "2010-04-01", form.Get("ApiVersion"))
	assert.Equal(t, "US", form.Get("FromCountry"))
	assert.Empty(t, form.Get("csrf"))
	in, err := sms.ParseInbound(form)
	require.NoError(t, err, "the bridge's own parser accepts the form")
	assert.Equal(t, simPatient, in.From)

	// The page shows the patient's own text after the redirect.
	_, page := h.get(t, resp.Header.Get("Location"))
	assert.Contains(t, page, "Hi, can I move my appointment?\nThanks")
	assert.Contains(t, page, "Sent.")
	assert.Empty(t, h.sim.Inbox(simPatient), "the patient's own texts are not in their inbox")

	// With no clinic given, the last clinic the patient texted is used.
	resp, _ = h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "body": "Second"}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, h.deliveries(), 2)
	assert.Equal(t, simClinic, h.deliveries()[1].Get("To"))
}

func TestSimulatorSendUsesLinkingAccount(t *testing.T) {
	h := newSimHarness(t)
	ctx := context.Background()
	accountSID := "AC" + strings.Repeat("3c", 16)
	acct := h.sim.Account(accountSID, strings.Repeat("4d", 16))
	num, err := acct.LookupNumber(ctx, simClinic)
	require.NoError(t, err)
	require.NoError(t, acct.ConfigureWebhooks(ctx, num.SID, sms.NumberWebhooks{SMSURL: "https://bridge.example/hook"}))
	resp, _ := h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "to": simClinic, "body": "Hello"}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, h.deliveries(), 1)
	assert.Equal(t, accountSID, h.deliveries()[0].Get("AccountSid"))
}

func TestSimulatorPhotoUpload(t *testing.T) {
	h := newSimHarness(t)
	pic := testPNG(t)
	// The browser's claimed type is ignored: the bytes say PNG.
	resp, _ := h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "to": simClinic, "body": ""},
		&simPhoto{name: "rash.bin", contentType: "application/octet-stream", data: pic})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	got := h.deliveries()
	require.Len(t, got, 1)
	form := got[0]
	assert.Regexp(t, simMediaSIDPattern, form.Get("MessageSid"))
	assert.Equal(t, "1", form.Get("NumMedia"))
	assert.Equal(t, "image/png", form.Get("MediaContentType0"))
	assert.Regexp(t, "^"+regexp.QuoteMeta(h.srv.URL+simBase+"/media/")+"[0-9a-f]{32}$", form.Get("MediaUrl0"))
	in, err := sms.ParseInbound(form)
	require.NoError(t, err)
	require.Len(t, in.Media, 1)

	mediaResp, err := http.Get(form.Get("MediaUrl0"))
	require.NoError(t, err)
	defer mediaResp.Body.Close()
	data, err := io.ReadAll(mediaResp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, mediaResp.StatusCode)
	assert.Equal(t, pic, data)
	assert.Equal(t, "image/png", mediaResp.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", mediaResp.Header.Get("X-Content-Type-Options"))

	_, page := h.get(t, simBase+"/phone/"+simPatient)
	assert.Contains(t, page, `<img src="`+form.Get("MediaUrl0")+`"`)

	resp, _ = h.get(t, simBase+"/media/"+strings.Repeat("0", 32))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = h.get(t, simBase+"/media/..%2f..%2fetc")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestSimulatorPhotoRefused(t *testing.T) {
	h := newSimHarness(t)
	csrf := h.csrf(t)
	big := append(testPNG(t), make([]byte, 5<<20)...)
	for _, tc := range []struct {
		name   string
		photo  *simPhoto
		status int
		words  string
	}{
		{"HTML claiming PNG", &simPhoto{"x.png", "image/png", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")},
			http.StatusUnsupportedMediaType, "must be a JPEG, PNG or GIF picture; this file is text/html"},
		{"just over 5 MB", &simPhoto{"big.png", "image/png", big}, http.StatusRequestEntityTooLarge, "larger than 5 MB"},
		{"far over 5 MB", &simPhoto{"huge.png", "image/png", append(big, make([]byte, 3<<20)...)}, http.StatusRequestEntityTooLarge, "larger than 5 MB"},
		{"empty file", &simPhoto{"empty.png", "image/png", nil}, http.StatusBadRequest, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := h.postSend(t, simPatient, map[string]string{"csrf": csrf, "to": simClinic, "body": "look at this"}, tc.photo)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Contains(t, page, tc.words)
			assert.Contains(t, page, `role="alert"`)
			assert.Empty(t, h.deliveries())
		})
	}
}

func TestSimulatorSendNeedsCSRF(t *testing.T) {
	h := newSimHarness(t)
	for _, fields := range []map[string]string{
		{"to": simClinic, "body": "hello"},
		{"to": simClinic, "body": "hello", "csrf": strings.Repeat("0", 64)},
		{"to": simClinic, "body": "hello", "csrf": ""},
	} {
		resp, _ := h.postSend(t, simPatient, fields, nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	}
	// A plain urlencoded post without the token is refused too.
	resp, err := h.client.PostForm(h.srv.URL+simBase+"/phone/"+simPatient+"/send", url.Values{"to": {simClinic}, "body": {"hello"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, h.deliveries())
}

func TestSimulatorRefusesBadNumbers(t *testing.T) {
	h := newSimHarness(t)
	csrf := h.csrf(t)
	for _, tc := range []struct {
		name, patient, to, words string
	}{
		{"clinic too short", simPatient, "555-0001", `The clinic number &#34;555-0001&#34; is not a phone number`},
		{"clinic of letters", simPatient, "the clinic", "is not a phone number. Type it as on a phone, such as (555) 123-4567"},
		{"clinic missing", simPatient, "", "Type the clinic number"},
		{"patient too short", "+1555", simClinic, `The patient number &#34;&#43;1555&#34; is not a phone number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := h.postSend(t, tc.patient, map[string]string{"csrf": csrf, "to": tc.to, "body": "hello there"}, nil)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.Contains(t, page, tc.words)
			assert.Empty(t, h.deliveries())
		})
	}
	resp, page := h.get(t, simBase+"/switch?phone=0044+20")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, page, "is not a phone number")
	resp, page = h.get(t, simBase+"/phone/12345")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, page, "is not a phone number")

	resp, page = h.postSend(t, simPatient, map[string]string{"csrf": csrf, "to": simClinic, "body": "   "}, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, page, "Type a message or choose a photo")
	assert.Empty(t, h.deliveries())
}

// Numbers are typed as people write them; the simulator keeps them in E.164.
func TestSimulatorAcceptsUsualNumberForms(t *testing.T) {
	h := newSimHarness(t)
	for _, typed := range []string{"(555) 123-4567", "555-123-4567", "555.123.4567", "+1 555 123 4567", "1 (555) 123-4567", "+15551234567"} {
		resp, _ := h.get(t, simBase+"/switch?phone="+url.QueryEscape(typed))
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, typed)
		assert.Equal(t, simBase+"/phone/+15551234567", resp.Header.Get("Location"), typed)
	}
	resp, _ := h.get(t, simBase+"/switch?phone=%2B447700900123")
	assert.Equal(t, simBase+"/phone/+447700900123", resp.Header.Get("Location"), "another country, with its code")
	resp, _ = h.get(t, simBase+"/phone/"+url.PathEscape("(555) 123-4567"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, simBase+"/phone/+15551234567", resp.Header.Get("Location"))

	csrf := h.csrf(t)
	for i, to := range []string{"(555) 000-1111", "+1 555-000-1111"} {
		resp, page := h.postSend(t, simPatient, map[string]string{"csrf": csrf, "to": to, "body": "hello there"}, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, page)
		deliveries := h.deliveries()
		require.Len(t, deliveries, i+1)
		assert.Equal(t, simClinic, deliveries[i].Get("To"), to)
		assert.Equal(t, simPatient, deliveries[i].Get("From"))
	}
}

func TestSimulatorShowsDeliverError(t *testing.T) {
	h := newSimHarness(t)
	h.mu.Lock()
	h.deliverErr = errors.New("the bridge answered HTTP 503: Temporarily unable to store the message")
	h.mu.Unlock()
	resp, page := h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "to": simClinic, "body": "Is the clinic open <today>?"}, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, page, "The bridge did not store the text, so the clinic will not see it")
	assert.Contains(t, page, "Temporarily unable to store the message")
	assert.Contains(t, page, ">Is the clinic open &lt;today&gt;?</textarea>", "the text is kept to send again")
	assert.NotContains(t, page, `http-equiv="refresh"`, "the error is not refreshed away")

	_, page = h.get(t, simBase+"/phone/"+simPatient)
	assert.NotContains(t, page, "Is the clinic open", "a text the bridge did not store is not shown as sent")
}

func TestSimulatorMessagesJSON(t *testing.T) {
	h := newSimHarness(t)
	ctx := context.Background()
	_, err := h.sim.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, Body: "first"})
	require.NoError(t, err)
	_, err = h.sim.Send(ctx, &sms.OutboundMessage{From: simClinic, To: simPatient, Body: "second <b>", MediaURLs: []string{"https://bridge.example/m/1.png"}})
	require.NoError(t, err)
	_, err = h.sim.Send(ctx, &sms.OutboundMessage{From: simClinic, To: "+15559876543", Body: "someone else"})
	require.NoError(t, err)

	resp, body := h.get(t, simBase+"/phone/"+simPatient+"/messages.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var feed struct {
		Phone    string           `json:"phone"`
		Version  uint64           `json:"version"`
		Messages []twiliosim.Text `json:"messages"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &feed))
	assert.Equal(t, simPatient, feed.Phone)
	assert.Equal(t, uint64(2), feed.Version)
	require.Len(t, feed.Messages, 2)
	assert.Equal(t, "first", feed.Messages[0].Body)
	assert.Equal(t, "second <b>", feed.Messages[1].Body)
	assert.Equal(t, []string{"https://bridge.example/m/1.png"}, feed.Messages[1].MediaURLs)
	assert.Equal(t, h.sim.Inbox(simPatient)[1].SID, feed.Messages[1].SID)

	resp, body = h.get(t, simBase+"/phone/+15550000000/messages.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"phone":"+15550000000","version":0,"messages":[]}`, body)
	resp, _ = h.get(t, simBase+"/phone/abc/messages.json")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestSimulatorHandlerUnderStripPrefix(t *testing.T) {
	sim := newSimulator(t, twiliosim.Options{BasePath: simBase})
	srv := httptest.NewServer(http.StripPrefix(simBase, sim.Handler()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + simBase + "/phone/" + simPatient)
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), `action="`+simBase+`/phone/`+htmlPlus(simPatient)+`/send"`)
}

func TestSimulatorPostWebhookSigns(t *testing.T) {
	ctx := context.Background()
	accountSID, authToken := "AC"+strings.Repeat("5e", 16), strings.Repeat("6f", 16)
	var got url.Values
	var signed bool
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		got = r.PostForm
		signed = sms.ValidSignature(authToken, "http://"+r.Host+r.URL.RequestURI(), r.PostForm, r.Header.Get("X-Twilio-Signature"))
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, sms.EmptyTwiML)
	}))
	defer bridge.Close()

	var sim *twiliosim.Simulator
	sim = newSimulator(t, twiliosim.Options{
		BasePath: simBase,
		Deliver:  func(ctx context.Context, form url.Values) error { return sim.PostWebhook(ctx, form) },
	})
	acct := sim.Account(accountSID, authToken)
	num, err := acct.LookupNumber(ctx, simClinic)
	require.NoError(t, err)
	require.NoError(t, acct.ConfigureWebhooks(ctx, num.SID, sms.NumberWebhooks{SMSURL: bridge.URL + "/_carebridge/twilio/login1/inbound"}))

	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	h := &simHarness{sim: sim, srv: srv, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp, _ := h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "to": simClinic, "body": "STOP"}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.True(t, signed, "the bridge's validator accepts the signature")
	assert.Equal(t, accountSID, got.Get("AccountSid"))
	assert.Equal(t, "STOP", got.Get("Body"))
	assert.Empty(t, got.Get("OptOutType"), "the bridge, not the simulator, handles opt-out keywords")

	// A clinic number without a webhook is a plain error on the page.
	resp, page := h.postSend(t, simPatient, map[string]string{"csrf": h.csrf(t), "to": "+15550002222", "body": "hello"}, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, page, "is not linked to the bridge")
}
