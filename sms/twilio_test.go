package sms_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

var (
	phoneNumberSIDPattern = regexp.MustCompile(`^PN[0-9a-f]{32}$`)
	smsSIDPattern         = regexp.MustCompile(`^SM[0-9a-f]{32}$`)
	mmsSIDPattern         = regexp.MustCompile(`^MM[0-9a-f]{32}$`)
)

// twilioFixture is one Twilio account owning the clinic number, on the strict fake.
type twilioFixture struct {
	fake       *testenv.FakeTwilio
	accountSID string
	authToken  string
	numberSID  string
	client     *sms.Twilio
}

func newTwilioFixture(t *testing.T) *twilioFixture {
	t.Helper()
	fake := testenv.NewFakeTwilio()
	t.Cleanup(fake.Close)
	fx := &twilioFixture{fake: fake, accountSID: testenv.NewTwilioSID("AC"), authToken: testenv.NewTwilioSID("")}
	fake.AddAccount(fx.accountSID, fx.authToken)
	fx.numberSID = fake.AddNumber(fx.accountSID, testClinicNumber)
	fx.client = newTwilioClient(t, fake.URL(), fx.accountSID, fx.authToken)
	return fx
}

func newTwilioClient(t *testing.T, apiURL, accountSID, authToken string) *sms.Twilio {
	t.Helper()
	client, err := sms.NewTwilio(sms.TwilioOptions{
		AccountSID: accountSID,
		AuthToken:  authToken,
		APIURL:     apiURL,
		Timeout:    5 * time.Second,
	})
	require.NoError(t, err)
	return client
}

// requireSendError asserts that err is Twilio's refusal with code, and returns it.
func requireSendError(t *testing.T, err error, code int) *sms.SendError {
	t.Helper()
	var sendErr *sms.SendError
	require.ErrorAs(t, err, &sendErr)
	assert.Equal(t, code, sendErr.Code, "error: %v", err)
	return sendErr
}

// closedPortURL is a loopback URL on which nothing listens.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

func TestNewTwilioRejectsAPIURL(t *testing.T) {
	for _, apiURL := range []string{
		"api.example.org",
		"127.0.0.1:8080",
		"/twilio",
		"://api.example.org",
		"http://[::1",
	} {
		t.Run(apiURL, func(t *testing.T) {
			client, err := sms.NewTwilio(sms.TwilioOptions{AccountSID: testAccountSID, AuthToken: testAuthToken, APIURL: apiURL})
			require.Error(t, err)
			assert.Nil(t, client)
			assert.Contains(t, err.Error(), "invalid Twilio API URL")
		})
	}
}

func TestTwilioCheckAccount(t *testing.T) {
	fx := newTwilioFixture(t)
	tests := []struct {
		name       string
		accountSID string
		authToken  string
		wantErr    error
	}{
		{"right credentials", fx.accountSID, fx.authToken, nil},
		{"wrong auth token", fx.accountSID, "0000000000000000ffffffffffffffff", sms.ErrBadCredentials},
		{"unknown account", testenv.NewTwilioSID("AC"), fx.authToken, sms.ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newTwilioClient(t, fx.fake.URL(), tt.accountSID, tt.authToken).CheckAccount(context.Background())
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

func TestTwilioCheckAccountUnreachable(t *testing.T) {
	client := newTwilioClient(t, closedPortURL(t), testAccountSID, testAuthToken)
	err := client.CheckAccount(context.Background())
	require.Error(t, err)
	assert.NotErrorIs(t, err, sms.ErrBadCredentials, "an outage is not a credentials problem")
}

func TestTwilioLookupNumber(t *testing.T) {
	fx := newTwilioFixture(t)
	otherAccount := testenv.NewTwilioSID("AC")
	fx.fake.AddAccount(otherAccount, testenv.NewTwilioSID(""))
	fx.fake.AddNumber(otherAccount, "+15550002222")

	t.Run("owned number", func(t *testing.T) {
		pn, err := fx.client.LookupNumber(context.Background(), testClinicNumber)
		require.NoError(t, err)
		assert.Regexp(t, phoneNumberSIDPattern, pn.SID)
		assert.Equal(t, &sms.PhoneNumber{SID: fx.numberSID, E164: testClinicNumber, FriendlyName: "(555) 000-1111"}, pn)
	})
	for _, tt := range []struct{ name, e164 string }{
		{"number of another account", "+15550002222"},
		{"number nobody owns", "+15550003333"},
		// Twilio's PhoneNumber filter matches partial numbers; only an exact match counts.
		{"prefix of the owned number", "+1555000111"},
		{"owned number in national format", "(555) 000-1111"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pn, err := fx.client.LookupNumber(context.Background(), tt.e164)
			require.ErrorIs(t, err, sms.ErrNumberNotOwned)
			assert.Nil(t, pn)
		})
	}
	t.Run("wrong auth token", func(t *testing.T) {
		client := newTwilioClient(t, fx.fake.URL(), fx.accountSID, "0000000000000000ffffffffffffffff")
		pn, err := client.LookupNumber(context.Background(), testClinicNumber)
		assert.Nil(t, pn)
		require.NotErrorIs(t, err, sms.ErrNumberNotOwned, "a credentials problem is not a missing number")
		requireSendError(t, err, 20003)
	})
}

// inboundReceiver is the bridge's webhook endpoint in miniature: it checks the
// signature against the public URL and parses the form.
type inboundReceiver struct {
	server    *httptest.Server
	authToken string
	mu        sync.Mutex
	got       []*sms.Inbound
}

func newInboundReceiver(t *testing.T, authToken string) *inboundReceiver {
	t.Helper()
	rcv := &inboundReceiver{authToken: authToken}
	rcv.server = httptest.NewServer(http.HandlerFunc(rcv.serveHTTP))
	t.Cleanup(rcv.server.Close)
	return rcv
}

func (rcv *inboundReceiver) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	publicURL := sms.PublicRequestURL(rcv.server.URL, r)
	if !sms.ValidWebhookSignature(rcv.authToken, publicURL, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	in, err := sms.ParseInbound(r.PostForm)
	if err != nil {
		http.Error(w, "bad webhook", http.StatusBadRequest)
		return
	}
	rcv.mu.Lock()
	rcv.got = append(rcv.got, in)
	rcv.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(sms.EmptyTwiML))
}

func (rcv *inboundReceiver) received() []*sms.Inbound {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]*sms.Inbound(nil), rcv.got...)
}

func TestTwilioConfigureWebhooks(t *testing.T) {
	fx := newTwilioFixture(t)
	rcv := newInboundReceiver(t, fx.authToken)
	smsURL := rcv.server.URL + "/twilio/sms?clinic=c7f3"
	ctx := context.Background()

	fallbackURL := "https://sms2.clinic.example/twilio/sms?clinic=c7f3"
	require.NoError(t, fx.client.ConfigureWebhooks(ctx, fx.numberSID, sms.NumberWebhooks{SMSURL: smsURL, SMSFallbackURL: fallbackURL}))
	pn, err := fx.client.LookupNumber(ctx, testClinicNumber)
	require.NoError(t, err)
	assert.Equal(t, smsURL, pn.SMSURL)
	assert.Equal(t, fallbackURL, pn.SMSFallbackURL)

	photo := fx.fake.AddMedia("image/jpeg", []byte("\xff\xd8\xff\xe0 not really a JPEG"))
	res, err := fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "Running 10 minutes late, sorry!")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	assert.Equal(t, sms.EmptyTwiML, res.Body)
	mms, err := fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "", photo)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, mms.StatusCode, mms.Body)

	got := rcv.received()
	require.Len(t, got, 2)
	assert.Equal(t, &sms.Inbound{
		MessageSID: res.MessageSID,
		AccountSID: fx.accountSID,
		From:       testPatientNumber,
		To:         testClinicNumber,
		Body:       "Running 10 minutes late, sorry!",
	}, got[0])
	assert.Regexp(t, mmsSIDPattern, got[1].MessageSID)
	// The fake attaches its media to the message, whose SID the media URL then names.
	assert.Equal(t, []sms.Media{{URL: mms.Params.Get("MediaUrl0"), ContentType: "image/jpeg"}}, got[1].Media)
	assert.Equal(t, path.Base(photo), path.Base(got[1].Media[0].URL))

	// Pointing the number elsewhere takes effect at once.
	moved := rcv.server.URL + "/twilio/sms?clinic=moved"
	require.NoError(t, fx.client.ConfigureWebhooks(ctx, fx.numberSID, sms.NumberWebhooks{SMSURL: moved}))
	res, err = fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "Still there?")
	require.NoError(t, err)
	assert.Equal(t, moved, res.URL)
	assert.Equal(t, http.StatusOK, res.StatusCode, res.Body)
}

func TestTwilioConfigureWebhooksRefused(t *testing.T) {
	fx := newTwilioFixture(t)
	tests := []struct {
		name      string
		numberSID string
		smsURL    string
		code      int
	}{
		{"not an http URL", fx.numberSID, "ftp://bridge.example.org/twilio/sms", 21402},
		{"relative URL", fx.numberSID, "/twilio/sms", 21402},
		{"unknown number", testenv.NewTwilioSID("PN"), "https://bridge.example.org/twilio/sms", 20404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fx.client.ConfigureWebhooks(context.Background(), tt.numberSID, sms.NumberWebhooks{SMSURL: tt.smsURL})
			requireSendError(t, err, tt.code)
			assert.Contains(t, err.Error(), "failed to set the number's SMS webhook")
		})
	}
	pn, err := fx.client.LookupNumber(context.Background(), testClinicNumber)
	require.NoError(t, err)
	assert.Empty(t, pn.SMSURL, "a refused update must leave the number untouched")
}

func TestTwilioSend(t *testing.T) {
	fx := newTwilioFixture(t)
	ctx := context.Background()

	statusServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(statusServer.Close)

	tests := []struct {
		name string
		msg  sms.OutboundMessage
		sid  *regexp.Regexp
	}{
		{
			name: "text",
			msg:  sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Your appointment is confirmed for Tuesday at 10:00."},
			sid:  smsSIDPattern,
		},
		{
			name: "text of exactly 1600 characters",
			msg:  sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: strings.Repeat("é", 1600)},
			sid:  smsSIDPattern,
		},
		{
			name: "picture without text",
			msg:  sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, MediaURLs: []string{"https://bridge.example.org/media/c7f3/aftercare.pdf"}},
			sid:  mmsSIDPattern,
		},
		{
			name: "with status callback",
			msg: sms.OutboundMessage{From: testClinicNumber, To: "+442079460958", Body: "Please bring your inhaler.",
				StatusCallback: statusServer.URL + "/twilio/status?portal=p1"},
			sid: smsSIDPattern,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent, err := fx.client.Send(ctx, &tt.msg)
			require.NoError(t, err)
			assert.Regexp(t, tt.sid, sent.SID)
			assert.Equal(t, "queued", sent.Status)

			waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			got, err := fx.fake.WaitForMessage(waitCtx, func(m testenv.FakeMessage) bool { return m.SID == sent.SID })
			require.NoError(t, err)
			assert.Equal(t, fx.accountSID, got.AccountSID)
			assert.Equal(t, tt.msg.From, got.From)
			assert.Equal(t, tt.msg.To, got.To)
			assert.Equal(t, tt.msg.Body, got.Body)
			assert.Equal(t, tt.msg.MediaURLs, got.MediaURLs)
			assert.Equal(t, tt.msg.StatusCallback, got.StatusCallback)
		})
	}

	// The StatusCallback passed to Send is where Twilio reports delivery.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cb, err := fx.fake.WaitForStatusCallback(waitCtx, func(cb testenv.CallbackResult) bool { return cb.MessageStatus == "delivered" })
	require.NoError(t, err)
	assert.Equal(t, statusServer.URL+"/twilio/status?portal=p1", cb.URL)
	assert.Equal(t, http.StatusNoContent, cb.StatusCode)
}

func TestTwilioSendRefused(t *testing.T) {
	fx := newTwilioFixture(t)
	const optedOut = "+15557654321"
	fx.fake.OptOut(testClinicNumber, optedOut)

	tests := []struct {
		name  string
		msg   sms.OutboundMessage
		code  int
		words string
	}{
		{
			name:  "To not E.164",
			msg:   sms.OutboundMessage{From: testClinicNumber, To: "(555) 123-4567", Body: "Hello"},
			code:  21211,
			words: "not a valid phone number",
		},
		{
			name:  "To too short",
			msg:   sms.OutboundMessage{From: testClinicNumber, To: "+1555", Body: "Hello"},
			code:  21211,
			words: "not a valid phone number",
		},
		{
			name:  "From not a number of the account",
			msg:   sms.OutboundMessage{From: "+15559998888", To: testPatientNumber, Body: "Hello"},
			code:  21606,
			words: "not an SMS-capable number of this Twilio account",
		},
		{
			name:  "recipient opted out",
			msg:   sms.OutboundMessage{From: testClinicNumber, To: optedOut, Body: "Reminder: your appointment is tomorrow."},
			code:  21610,
			words: "opted out by replying STOP",
		},
		{
			name:  "body over 1600 characters",
			msg:   sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: strings.Repeat("a", 1601)},
			code:  21617,
			words: "longer than 1,600 characters",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent, err := fx.client.Send(context.Background(), &tt.msg)
			assert.Nil(t, sent)
			sendErr := requireSendError(t, err, tt.code)
			assert.Equal(t, http.StatusBadRequest, sendErr.Status)
			assert.False(t, sendErr.Transient(), "Twilio will refuse the same message again")
			assert.ErrorIs(t, err, sms.ErrTwilioRejection)
			assert.Contains(t, sendErr.Describe(), tt.words)
			assert.Equal(t, sms.DescribeTwilioError(tt.code), sendErr.Describe())
			assert.Contains(t, err.Error(), "Twilio error "+strconv.Itoa(tt.code))
		})
	}
	assert.Empty(t, fx.fake.Messages(), "a refused message must not be recorded")
}

func TestTwilioSendUnreachable(t *testing.T) {
	client := newTwilioClient(t, closedPortURL(t), testAccountSID, testAuthToken)
	sent, err := client.Send(context.Background(), &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Hello"})
	assert.Nil(t, sent)
	sendErr := requireSendError(t, err, 0)
	assert.Zero(t, sendErr.Status)
	assert.True(t, sendErr.Transient())
	assert.Contains(t, sendErr.Describe(), "Twilio could not be reached")
	assert.Contains(t, err.Error(), "failed to send through Twilio")
	var netErr *url.Error
	assert.ErrorAs(t, err, &netErr, "the transport error stays reachable through Unwrap")
	assert.NotErrorIs(t, err, sms.ErrTwilioRejection)
}

func TestTwilioSendTimeout(t *testing.T) {
	release := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(stall.Close)
	t.Cleanup(func() { close(release) }) // runs first, so Close does not wait for the handler
	client, err := sms.NewTwilio(sms.TwilioOptions{AccountSID: testAccountSID, AuthToken: testAuthToken, APIURL: stall.URL, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	start := time.Now()
	_, err = client.Send(context.Background(), &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Hello"})
	sendErr := requireSendError(t, err, 0)
	// Twilio may have created the message before the answer was lost: never resend it.
	assert.False(t, sendErr.Transient(), "a timeout is ambiguous, so it is not retried")
	assert.Contains(t, sendErr.Describe(), "may or may not have been sent")
	assert.Less(t, time.Since(start), 3*time.Second, "the Timeout option must bound Send")
}

// TestTwilioSendServerErrors drives the client against a stub answering as Twilio does
// when it is overloaded or failing, and as a proxy in front of it does.
func TestTwilioSendServerErrors(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		contentType   string
		body          string
		wantCode      int
		wantTransient bool
	}{
		{"rate limited", http.StatusTooManyRequests, "application/json",
			`{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}`, 20429, true},
		{"service unavailable", http.StatusServiceUnavailable, "application/json",
			`{"code": 20503, "message": "Service Unavailable", "more_info": "https://www.twilio.com/docs/errors/20503", "status": 503}`, 20503, true},
		{"unknown 5xx code", http.StatusInternalServerError, "application/json",
			`{"code": 20999, "message": "Internal", "more_info": "https://www.twilio.com/docs/errors/20999", "status": 500}`, 20999, true},
		// Not Twilio's answer: the proxy may have forwarded the request, so it is ambiguous.
		{"proxy's HTML error page", http.StatusBadGateway, "text/html",
			`<html><body><h1>502 Bad Gateway</h1></body></html>`, 0, false},
		{"permanent refusal", http.StatusBadRequest, "application/json",
			`{"code": 21408, "message": "Permission to send an SMS has not been enabled", "more_info": "https://www.twilio.com/docs/errors/21408", "status": 400}`, 21408, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(stub.Close)
			client := newTwilioClient(t, stub.URL, testAccountSID, testAuthToken)
			_, err := client.Send(context.Background(), &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Hello"})
			sendErr := requireSendError(t, err, tt.wantCode)
			assert.Equal(t, tt.wantTransient, sendErr.Transient())
		})
	}
}

// TestTwilioAPIURLPathPrefix mounts the fake under /twilio behind a reverse proxy, as a
// Twilio-compatible server behind a shared ingress would be: the client must keep the prefix.
func TestTwilioAPIURLPathPrefix(t *testing.T) {
	fx := newTwilioFixture(t)
	target, err := url.Parse(fx.fake.URL())
	require.NoError(t, err)

	var mu sync.Mutex
	var paths []string
	mux := http.NewServeMux()
	mux.Handle("/twilio/", http.StripPrefix("/twilio", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	})))
	ingress := httptest.NewServer(mux)
	t.Cleanup(ingress.Close)

	for _, apiURL := range []string{ingress.URL + "/twilio", ingress.URL + "/twilio/"} {
		t.Run(apiURL, func(t *testing.T) {
			mu.Lock()
			paths = nil
			mu.Unlock()
			client := newTwilioClient(t, apiURL, fx.accountSID, fx.authToken)
			ctx := context.Background()
			require.NoError(t, client.CheckAccount(ctx))
			pn, err := client.LookupNumber(ctx, testClinicNumber)
			require.NoError(t, err)
			assert.Equal(t, fx.numberSID, pn.SID)
			sent, err := client.Send(ctx, &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Hello through the ingress"})
			require.NoError(t, err)
			assert.Regexp(t, smsSIDPattern, sent.SID)

			mu.Lock()
			defer mu.Unlock()
			prefix := "/2010-04-01/Accounts/" + fx.accountSID
			assert.Equal(t, []string{
				prefix + ".json",
				prefix + "/IncomingPhoneNumbers.json",
				prefix + "/Messages.json",
			}, paths, "paths after /twilio, without a doubled slash")
		})
	}

	t.Run("without the prefix the ingress has no route", func(t *testing.T) {
		client := newTwilioClient(t, ingress.URL, fx.accountSID, fx.authToken)
		err := client.CheckAccount(context.Background())
		require.Error(t, err)
		assert.NotErrorIs(t, err, sms.ErrBadCredentials)
	})
}

func TestTwilioSendWithoutSID(t *testing.T) {
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"status": "queued"}`))
	}))
	t.Cleanup(stub.Close)
	client := newTwilioClient(t, stub.URL, testAccountSID, testAuthToken)
	sent, err := client.Send(context.Background(), &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Hello"})
	assert.Nil(t, sent)
	requireSendError(t, err, 0)
	assert.False(t, errors.Is(err, sms.ErrTwilioRejection))
}
