package testenv

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// receivedWebhook is one request as a bridge behind no proxy sees it.
type receivedWebhook struct {
	method   string
	url      string
	header   http.Header
	params   url.Values
	sigValid bool
}

// newWebhookReceiver stands in for the bridge: it checks each request's signature
// with twilio-go's own validator and answers with an empty TwiML response.
func newWebhookReceiver(t *testing.T, authToken string) (*httptest.Server, <-chan receivedWebhook) {
	t.Helper()
	got := make(chan receivedWebhook, 32)
	validator := client.NewRequestValidator(authToken)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.NoError(t, r.ParseForm())
		publicURL := "http://" + r.Host + r.URL.RequestURI()
		signed := map[string]string{}
		params := r.URL.Query()
		if r.Method == http.MethodPost {
			params = r.PostForm
			for k, v := range r.PostForm {
				signed[k] = v[0]
			}
		}
		got <- receivedWebhook{
			method:   r.Method,
			url:      publicURL,
			header:   r.Header.Clone(),
			params:   params,
			sigValid: validator.Validate(publicURL, signed, r.Header.Get("X-Twilio-Signature")),
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Response/>`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func receive(t *testing.T, ch <-chan receivedWebhook) receivedWebhook {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook arrived within 5 s")
		return receivedWebhook{}
	}
}

func setSmsURL(t *testing.T, fx fakeTwilioFixture, smsURL, method string) {
	t.Helper()
	_, err := fx.api.UpdateIncomingPhoneNumber(fx.numberSID,
		(&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl(smsURL).SetSmsMethod(method))
	require.NoError(t, err)
}

func TestFakeTwilioSendInbound(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	srv, got := newWebhookReceiver(t, fx.authToken)
	smsURL := srv.URL + "/_twilio/sms?tenant=clinic-7"
	setSmsURL(t, fx, smsURL, "POST")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	res, err := fx.fake.SendInbound(ctx, fakeTestPatient, fakeTestClinicNumber, "Can I move my appointment to Friday?")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Body, "<Response/>")
	assert.Equal(t, "text/xml", res.Header.Get("Content-Type"))
	assert.Regexp(t, `^SM[0-9a-f]{32}$`, res.MessageSID)

	var keys []string
	for k := range res.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{
		"AccountSid", "ApiVersion", "Body", "From", "FromCity", "FromCountry", "FromState",
		"FromZip", "MessageSid", "NumMedia", "NumSegments", "SmsMessageSid", "SmsSid",
		"SmsStatus", "To", "ToCity", "ToCountry", "ToState", "ToZip",
	}, keys)
	p := res.Params
	assert.Equal(t, res.MessageSID, p.Get("MessageSid"))
	assert.Equal(t, res.MessageSID, p.Get("SmsSid"))
	assert.Equal(t, res.MessageSID, p.Get("SmsMessageSid"))
	assert.Equal(t, "received", p.Get("SmsStatus"))
	assert.Equal(t, fx.accountSID, p.Get("AccountSid"))
	assert.Equal(t, "2010-04-01", p.Get("ApiVersion"))
	assert.Equal(t, fakeTestPatient, p.Get("From"))
	assert.Equal(t, fakeTestClinicNumber, p.Get("To"))
	assert.Equal(t, "US", p.Get("FromCountry"))
	assert.Equal(t, "0", p.Get("NumMedia"))
	assert.Equal(t, "1", p.Get("NumSegments"))

	first := receive(t, got)
	assert.Equal(t, http.MethodPost, first.method)
	assert.Equal(t, smsURL, first.url)
	assert.True(t, first.sigValid, "twilio-go must accept the signature")
	assert.Equal(t, "application/x-www-form-urlencoded", first.header.Get("Content-Type"))
	assert.Equal(t, "TwilioProxy/1.1", first.header.Get("User-Agent"))
	assert.Equal(t, res.Params, first.params)

	again, err := fx.fake.ResendInbound(ctx, res)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, again.StatusCode)
	second := receive(t, got)
	assert.True(t, second.sigValid)
	assert.Equal(t, first.params, second.params, "a retry carries the same MessageSid and form")
	assert.Equal(t, first.header.Get("I-Twilio-Idempotency-Token"), second.header.Get("I-Twilio-Idempotency-Token"))
	assert.NotEmpty(t, second.header.Get("I-Twilio-Idempotency-Token"))
}

func TestFakeTwilioSendInboundErrors(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	fx.fake.AddNumber(fx.accountSID, "+15550003333")
	ctx := context.Background()

	_, err := fx.fake.SendInbound(ctx, fakeTestPatient, "+15559990000", "Hello")
	assert.ErrorContains(t, err, "not a number of the fake")
	_, err = fx.fake.SendInbound(ctx, fakeTestPatient, "+15550003333", "Hello")
	assert.ErrorContains(t, err, "no SmsUrl")

	// The bridge's answer, not a transport failure, is what a 403 is.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "invalid signature", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	setSmsURL(t, fx, srv.URL+"/_twilio/sms", "POST")
	res, err := fx.fake.SendInbound(ctx, fakeTestPatient, fakeTestClinicNumber, "Hello")
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
}

func TestFakeTwilioSendInboundGET(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	srv, got := newWebhookReceiver(t, fx.authToken)
	setSmsURL(t, fx, srv.URL+"/_twilio/sms", "GET")
	res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Running late, sorry")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	r := receive(t, got)
	assert.Equal(t, http.MethodGet, r.method)
	assert.True(t, r.sigValid, "a GET webhook is signed over the full URL alone")
	assert.Equal(t, "Running late, sorry", r.params.Get("Body"))
}

func TestFakeTwilioInboundStopOptsOut(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	srv, got := newWebhookReceiver(t, fx.authToken)
	setSmsURL(t, fx, srv.URL+"/_twilio/sms", "POST")
	ctx := context.Background()
	send := func() error {
		_, err := fx.api.CreateMessage((&openapi.CreateMessageParams{}).
			SetTo(fakeTestPatient).SetFrom(fakeTestClinicNumber).SetBody("Your lab results are ready."))
		return err
	}
	require.NoError(t, send())

	res, err := fx.fake.SendInbound(ctx, fakeTestPatient, fakeTestClinicNumber, " stop ")
	require.NoError(t, err)
	assert.Equal(t, "STOP", res.Params.Get("OptOutType"))
	assert.True(t, receive(t, got).sigValid)
	requireTwilioError(t, send(), 21610, http.StatusBadRequest)

	res, err = fx.fake.SendInbound(ctx, fakeTestPatient, fakeTestClinicNumber, "START")
	require.NoError(t, err)
	assert.Equal(t, "START", res.Params.Get("OptOutType"))
	require.NoError(t, send())

	fx.fake.OptOut(fakeTestClinicNumber, fakeTestPatient)
	requireTwilioError(t, send(), 21610, http.StatusBadRequest)
	fx.fake.OptIn(fakeTestClinicNumber, fakeTestPatient)
	require.NoError(t, send())
}

func TestFakeTwilioStatusCallbacks(t *testing.T) {
	tests := []struct {
		name      string
		outcome   string
		errorCode int
		want      []string
	}{
		{"delivered", "", 0, []string{"sent", "delivered"}},
		{"undelivered", "undelivered", 30003, []string{"sent", "undelivered"}},
		{"failed", "failed", 30007, []string{"failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeTwilioFixture(t)
			srv, got := newWebhookReceiver(t, fx.authToken)
			if tt.outcome != "" {
				fx.fake.SetDeliveryOutcome(fakeTestPatient, tt.outcome, tt.errorCode)
			}
			callback := srv.URL + "/_twilio/status?portal=p1"
			msg, err := fx.api.CreateMessage((&openapi.CreateMessageParams{}).
				SetTo(fakeTestPatient).SetFrom(fakeTestClinicNumber).
				SetBody("Your prescription is ready for pickup.").SetStatusCallback(callback))
			require.NoError(t, err)

			for _, status := range tt.want {
				r := receive(t, got)
				assert.True(t, r.sigValid, "status callback %s must be signed", status)
				assert.Equal(t, http.MethodPost, r.method)
				assert.Equal(t, callback, r.url)
				p := r.params
				assert.Equal(t, status, p.Get("MessageStatus"))
				assert.Equal(t, status, p.Get("SmsStatus"))
				assert.Equal(t, *msg.Sid, p.Get("MessageSid"))
				assert.Equal(t, *msg.Sid, p.Get("SmsSid"))
				assert.Equal(t, fx.accountSID, p.Get("AccountSid"))
				assert.Equal(t, fakeTestClinicNumber, p.Get("From"))
				assert.Equal(t, fakeTestPatient, p.Get("To"))
				assert.Equal(t, "2010-04-01", p.Get("ApiVersion"))
				if status == tt.outcome && tt.errorCode != 0 {
					assert.Equal(t, strconv.Itoa(tt.errorCode), p.Get("ErrorCode"))
				} else {
					assert.NotContains(t, p, "ErrorCode")
				}
			}
			final := tt.want[len(tt.want)-1]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cb, err := fx.fake.WaitForStatusCallback(ctx, func(c CallbackResult) bool { return c.MessageStatus == final })
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, cb.StatusCode)
			assert.NoError(t, cb.Err)
			assert.Equal(t, tt.errorCode, cb.ErrorCode)

			results := fx.fake.StatusCallbacks()
			require.Len(t, results, len(tt.want))
			for i, r := range results {
				assert.Equal(t, tt.want[i], r.MessageStatus)
				assert.Equal(t, *msg.Sid, r.MessageSID)
			}

			fetched, err := fx.api.FetchMessage(*msg.Sid, nil)
			require.NoError(t, err)
			assert.Equal(t, final, *fetched.Status)
			if tt.errorCode != 0 {
				require.NotNil(t, fetched.ErrorCode)
				assert.Equal(t, tt.errorCode, *fetched.ErrorCode)
			} else {
				assert.Nil(t, fetched.ErrorCode)
			}
			assert.Equal(t, final, fx.fake.Messages()[0].Status)
		})
	}
}

func TestFakeTwilioMedia(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	srv, got := newWebhookReceiver(t, fx.authToken)
	setSmsURL(t, fx, srv.URL+"/_twilio/sms", "POST")
	jpeg := append([]byte{0xff, 0xd8, 0xff, 0xe0}, []byte("insurance card scan")...)
	mediaURL := fx.fake.AddMedia("image/jpeg", jpeg)
	assert.Regexp(t, `^`+fx.fake.URL()+`/2010-04-01/Accounts/`+fx.accountSID+`/Messages/MM[0-9a-f]{32}/Media/ME[0-9a-f]{32}$`, mediaURL)

	res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Here is my card", mediaURL)
	require.NoError(t, err)
	assert.Regexp(t, `^MM`, res.MessageSID)
	assert.Equal(t, "1", res.Params.Get("NumMedia"))
	// The media is now the message's: its URL names the inbound message, as Twilio's do.
	assert.Equal(t, fx.fake.URL()+"/2010-04-01/Accounts/"+fx.accountSID+"/Messages/"+res.MessageSID+"/Media/"+path.Base(mediaURL),
		res.Params.Get("MediaUrl0"))
	assert.Equal(t, "image/jpeg", res.Params.Get("MediaContentType0"))
	assert.True(t, receive(t, got).sigValid)
	mediaURL = res.Params.Get("MediaUrl0")

	t.Run("download with basic auth follows the redirect to the CDN", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, mediaURL, nil)
		require.NoError(t, err)
		req.SetBasicAuth(fx.accountSID, fx.authToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, jpeg, data)
		assert.NotEqual(t, req.URL.Hostname(), resp.Request.URL.Hostname(), "media must come from another host")
	})
	t.Run("no credentials", func(t *testing.T) {
		resp, err := http.Get(mediaURL)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		assert.EqualValues(t, 20003, body["code"])
	})
	t.Run("credentials leaked to the CDN", func(t *testing.T) {
		leaky := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
			req.Header.Set("Authorization", via[0].Header.Get("Authorization"))
			return nil
		}}
		req, err := http.NewRequest(http.MethodGet, mediaURL, nil)
		require.NoError(t, err)
		req.SetBasicAuth(fx.accountSID, fx.authToken)
		resp, err := leaky.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("redirect is a 307", func(t *testing.T) {
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, err := http.NewRequest(http.MethodGet, mediaURL, nil)
		require.NoError(t, err)
		req.SetBasicAuth(fx.accountSID, fx.authToken)
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), "http://"))
	})
}
