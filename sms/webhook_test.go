package sms_test

import (
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"

	"github.com/carebridge/carebridge/sms"
)

const (
	testClinicNumber  = "+15550001111"
	testPatientNumber = "+15551234567"
	testAccountSID    = "AC3f0c1e7a9b2d4c6e8f0a1b2c3d4e5f60"
	testAuthToken     = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
	testMessageSID    = "SM9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	testMMSSID        = "MM0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	testServiceSID    = "MG1234567890abcdef1234567890abcdef"
	testWebhookURL    = "https://bridge.example.org/twilio/sms?clinic=c7f3"
)

var (
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
)

// inboundSMSForm is every field Twilio posts for an inbound SMS, as the fake's
// SendInbound builds it: geographic fields are empty for fictional 555 numbers.
func inboundSMSForm() url.Values {
	return url.Values{
		"ToCountry":     {"US"},
		"ToState":       {""},
		"SmsMessageSid": {testMessageSID},
		"NumMedia":      {"0"},
		"ToCity":        {""},
		"FromZip":       {""},
		"SmsSid":        {testMessageSID},
		"FromState":     {""},
		"SmsStatus":     {"received"},
		"FromCity":      {""},
		"Body":          {"Hi, can I move my appointment to Thursday?"},
		"FromCountry":   {"US"},
		"To":            {testClinicNumber},
		"ToZip":         {""},
		"NumSegments":   {"1"},
		"MessageSid":    {testMessageSID},
		"AccountSid":    {testAccountSID},
		"From":          {testPatientNumber},
		"ApiVersion":    {"2010-04-01"},
	}
}

func twilioMediaURL(i int) string {
	return "https://api.twilio.com/2010-04-01/Accounts/" + testAccountSID + "/Messages/" + testMMSSID +
		"/Media/ME" + strings.Repeat(strconv.Itoa(i), 32)
}

// inboundMMSForm is an MMS with a photo and a PDF, sent through a messaging service.
func inboundMMSForm() url.Values {
	form := inboundSMSForm()
	for _, k := range []string{"SmsMessageSid", "SmsSid", "MessageSid"} {
		form.Set(k, testMMSSID)
	}
	form.Set("Body", "Here is the photo of the rash and my insurance card")
	form.Set("NumMedia", "2")
	form.Set("MediaUrl0", twilioMediaURL(0))
	form.Set("MediaContentType0", "image/jpeg")
	form.Set("MediaUrl1", twilioMediaURL(1))
	form.Set("MediaContentType1", "application/pdf")
	form.Set("MessagingServiceSid", testServiceSID)
	return form
}

func TestParseInbound(t *testing.T) {
	tests := []struct {
		name string
		form func() url.Values
		want *sms.Inbound
	}{
		{
			name: "SMS",
			form: inboundSMSForm,
			want: &sms.Inbound{
				MessageSID: testMessageSID,
				AccountSID: testAccountSID,
				From:       testPatientNumber,
				To:         testClinicNumber,
				Body:       "Hi, can I move my appointment to Thursday?",
			},
		},
		{
			name: "MMS with two attachments",
			form: inboundMMSForm,
			want: &sms.Inbound{
				MessageSID: testMMSSID,
				AccountSID: testAccountSID,
				From:       testPatientNumber,
				To:         testClinicNumber,
				Body:       "Here is the photo of the rash and my insurance card",
				Media: []sms.Media{
					{URL: twilioMediaURL(0), ContentType: "image/jpeg"},
					{URL: twilioMediaURL(1), ContentType: "application/pdf"},
				},
			},
		},
		{
			name: "MMS without a body",
			form: func() url.Values {
				form := inboundMMSForm()
				form.Set("Body", "")
				return form
			},
			want: &sms.Inbound{
				MessageSID: testMMSSID,
				AccountSID: testAccountSID,
				From:       testPatientNumber,
				To:         testClinicNumber,
				Media: []sms.Media{
					{URL: twilioMediaURL(0), ContentType: "image/jpeg"},
					{URL: twilioMediaURL(1), ContentType: "application/pdf"},
				},
			},
		},
		{
			name: "STOP handled by Advanced Opt-Out",
			form: func() url.Values {
				form := inboundSMSForm()
				form.Set("Body", "STOP")
				form.Set("OptOutType", "STOP")
				return form
			},
			want: &sms.Inbound{
				MessageSID: testMessageSID,
				AccountSID: testAccountSID,
				From:       testPatientNumber,
				To:         testClinicNumber,
				Body:       "STOP",
				OptOutType: "STOP",
			},
		},
		{
			name: "NumMedia absent",
			form: func() url.Values {
				form := inboundSMSForm()
				form.Del("NumMedia")
				return form
			},
			want: &sms.Inbound{
				MessageSID: testMessageSID,
				AccountSID: testAccountSID,
				From:       testPatientNumber,
				To:         testClinicNumber,
				Body:       "Hi, can I move my appointment to Thursday?",
			},
		},
		{
			name: "http media URL (the fake's media server)",
			form: func() url.Values {
				form := inboundSMSForm()
				form.Set("NumMedia", "1")
				form.Set("MediaUrl0", "http://127.0.0.1:38211/media/ME00112233445566778899aabbccddeeff")
				form.Set("MediaContentType0", "image/png")
				return form
			},
			want: &sms.Inbound{
				MessageSID: testMessageSID,
				AccountSID: testAccountSID,
				From:       testPatientNumber,
				To:         testClinicNumber,
				Body:       "Hi, can I move my appointment to Thursday?",
				Media:      []sms.Media{{URL: "http://127.0.0.1:38211/media/ME00112233445566778899aabbccddeeff", ContentType: "image/png"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sms.ParseInbound(tt.form())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseInboundMaxMedia(t *testing.T) {
	form := inboundSMSForm()
	form.Set("NumMedia", strconv.Itoa(sms.MaxMedia))
	for i := range sms.MaxMedia {
		form.Set("MediaUrl"+strconv.Itoa(i), twilioMediaURL(i))
		form.Set("MediaContentType"+strconv.Itoa(i), "image/jpeg")
	}
	in, err := sms.ParseInbound(form)
	require.NoError(t, err)
	require.Len(t, in.Media, sms.MaxMedia)
	assert.Equal(t, twilioMediaURL(9), in.Media[9].URL)
}

func TestParseInboundRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(url.Values)
	}{
		{"MessageSid missing", func(f url.Values) { f.Del("MessageSid") }},
		{"MessageSid empty", func(f url.Values) { f.Set("MessageSid", "") }},
		{"MessageSid too short", func(f url.Values) { f.Set("MessageSid", "SM9f8e7d6c") }},
		{"MessageSid wrong prefix", func(f url.Values) { f.Set("MessageSid", "CA9f8e7d6c5b4a39281706f5e4d3c2b1a0") }},
		{"MessageSid upper-case hex", func(f url.Values) { f.Set("MessageSid", "SM9F8E7D6C5B4A39281706F5E4D3C2B1A0") }},
		{"MessageSid trailing newline", func(f url.Values) { f.Set("MessageSid", testMessageSID+"\n") }},
		{"AccountSid missing", func(f url.Values) { f.Del("AccountSid") }},
		{"AccountSid malformed", func(f url.Values) { f.Set("AccountSid", "AC123") }},
		{"AccountSid lower-case prefix", func(f url.Values) { f.Set("AccountSid", "ac3f0c1e7a9b2d4c6e8f0a1b2c3d4e5f60") }},
		{"AccountSid with a non-hex digit", func(f url.Values) { f.Set("AccountSid", "AC3f0c1e7a9b2d4c6e8f0a1b2c3d4e5f6g") }},
		{"From missing", func(f url.Values) { f.Del("From") }},
		{"To missing", func(f url.Values) { f.Del("To") }},
		{"To empty", func(f url.Values) { f.Set("To", "") }},
		{"NumMedia not a number", func(f url.Values) { f.Set("NumMedia", "x") }},
		{"NumMedia negative", func(f url.Values) { f.Set("NumMedia", "-1") }},
		{"NumMedia above 10", func(f url.Values) { f.Set("NumMedia", "11") }},
		{"NumMedia huge", func(f url.Values) { f.Set("NumMedia", "99999999999999999999") }},
		{"NumMedia with a decimal point", func(f url.Values) { f.Set("NumMedia", "1.0") }},
		{"MediaUrl missing", func(f url.Values) { f.Set("NumMedia", "1") }},
		{"MediaUrl1 missing", func(f url.Values) {
			f.Set("NumMedia", "2")
			f.Set("MediaUrl0", twilioMediaURL(0))
		}},
		{"MediaUrl relative", func(f url.Values) {
			f.Set("NumMedia", "1")
			f.Set("MediaUrl0", "/2010-04-01/Accounts/"+testAccountSID+"/Messages/"+testMMSSID+"/Media/ME1")
		}},
		{"MediaUrl javascript:", func(f url.Values) {
			f.Set("NumMedia", "1")
			f.Set("MediaUrl0", "javascript:alert(document.cookie)")
		}},
		{"MediaUrl file:", func(f url.Values) {
			f.Set("NumMedia", "1")
			f.Set("MediaUrl0", "file:///etc/passwd")
		}},
		{"MediaUrl without host", func(f url.Values) {
			f.Set("NumMedia", "1")
			f.Set("MediaUrl0", "https:///2010-04-01/Accounts")
		}},
		{"MediaUrl unparsable", func(f url.Values) {
			f.Set("NumMedia", "1")
			f.Set("MediaUrl0", "https://api.twilio.com/%zz")
		}},
		{"no body and no media", func(f url.Values) { f.Set("Body", "") }},
		{"no body and NumMedia absent", func(f url.Values) {
			f.Del("Body")
			f.Del("NumMedia")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := inboundSMSForm()
			tt.mutate(form)
			got, err := sms.ParseInbound(form)
			require.ErrorIs(t, err, sms.ErrInvalidWebhook)
			assert.Nil(t, got)
		})
	}
}

func TestValidSignature(t *testing.T) {
	repeated := inboundSMSForm()
	repeated.Add("Body", "a second body")

	tests := []struct {
		name      string
		signURL   string        // the URL Twilio signed
		signForm  url.Values    // the form Twilio signed
		signToken string        // the auth token Twilio signed with
		checkURL  string        // the URL the bridge checks against
		checkForm url.Values    // the form the bridge received
		signature func() string // overrides the computed signature
		want      bool
	}{
		{name: "as Twilio signed it", want: true},
		{name: "MMS form", signForm: inboundMMSForm(), checkForm: inboundMMSForm(), want: true},
		{name: "explicit default port", checkURL: "https://bridge.example.org:443/twilio/sms?clinic=c7f3", want: true},
		{
			name:      "tampered body",
			checkForm: func() url.Values { f := inboundSMSForm(); f.Set("Body", "Cancel all my appointments"); return f }(),
		},
		{
			name:      "tampered sender",
			checkForm: func() url.Values { f := inboundSMSForm(); f.Set("From", "+15559876543"); return f }(),
		},
		{
			name:      "added parameter",
			checkForm: func() url.Values { f := inboundSMSForm(); f.Set("OptOutType", "STOP"); return f }(),
		},
		{
			name:      "removed empty parameter",
			checkForm: func() url.Values { f := inboundSMSForm(); f.Del("FromCity"); return f }(),
		},
		{name: "http instead of https", checkURL: "http://bridge.example.org/twilio/sms?clinic=c7f3"},
		{name: "proxy's internal host (error 57012)", checkURL: "http://127.0.0.1:29318/twilio/sms?clinic=c7f3"},
		{name: "query missing", checkURL: "https://bridge.example.org/twilio/sms"},
		{name: "wrong auth token", signToken: "0000000000000000ffffffffffffffff"},
		{name: "empty signature", signature: func() string { return "" }},
		{name: "garbage signature", signature: func() string { return "not base64 at all" }},
		{name: "repeated parameter name", signForm: repeated, checkForm: repeated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signURL, signForm, signToken := testWebhookURL, inboundSMSForm(), testAuthToken
			if tt.signURL != "" {
				signURL = tt.signURL
			}
			if tt.signForm != nil {
				signForm = tt.signForm
			}
			if tt.signToken != "" {
				signToken = tt.signToken
			}
			checkURL, checkForm := testWebhookURL, inboundSMSForm()
			if tt.checkURL != "" {
				checkURL = tt.checkURL
			}
			if tt.checkForm != nil {
				checkForm = tt.checkForm
			}
			signature := sms.SignWebhook(signToken, signURL, signForm)
			if tt.signature != nil {
				signature = tt.signature()
			}
			assert.Equal(t, tt.want, sms.ValidSignature(testAuthToken, checkURL, checkForm, signature))
		})
	}
}

func TestPublicRequestURL(t *testing.T) {
	tests := []struct {
		name       string
		publicBase string
		target     string
		want       string
	}{
		{"base without slash", "https://bridge.example.org", "/twilio/sms?clinic=c7f3", testWebhookURL},
		{"base with slash", "https://bridge.example.org/", "/twilio/sms?clinic=c7f3", testWebhookURL},
		{"base with several slashes", "https://bridge.example.org//", "/twilio/sms?clinic=c7f3", testWebhookURL},
		{"no query", "https://bridge.example.org", "/twilio/sms", "https://bridge.example.org/twilio/sms"},
		{"empty query kept", "https://bridge.example.org", "/twilio/sms?", "https://bridge.example.org/twilio/sms?"},
		{"escaped query kept as sent", "https://bridge.example.org", "/twilio/sms?clinic=St%20Mary%27s&x=a+b", "https://bridge.example.org/twilio/sms?clinic=St%20Mary%27s&x=a+b"},
		{"escaped path kept as sent", "https://bridge.example.org", "/twilio/sms%2Fc7f3", "https://bridge.example.org/twilio/sms%2Fc7f3"},
		{"base with a path prefix the proxy strips", "https://clinic.example.org/carebridge/", "/twilio/sms?clinic=c7f3", "https://clinic.example.org/carebridge/twilio/sms?clinic=c7f3"},
		{"proxy's internal host is replaced", "https://bridge.example.org", "http://10.0.0.5:29318/twilio/sms?clinic=c7f3", testWebhookURL},
		{"public port kept", "https://bridge.example.org:8443", "/twilio/sms", "https://bridge.example.org:8443/twilio/sms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.target, nil)
			assert.Equal(t, tt.want, sms.PublicRequestURL(tt.publicBase, r))
		})
	}
}

func FuzzParseInbound(f *testing.F) {
	f.Add(inboundSMSForm().Encode())
	f.Add(inboundMMSForm().Encode())
	f.Add("MessageSid=" + testMessageSID + "&AccountSid=" + testAccountSID + "&From=%2B15551234567&To=%2B15550001111&Body=hi")
	f.Add("MessageSid=" + testMessageSID + "&AccountSid=" + testAccountSID + "&From=a&To=b&NumMedia=10&MediaUrl9=https://x")
	f.Add("MessageSid=" + testMessageSID + "&AccountSid=" + testAccountSID + "&From=a&To=b&NumMedia=1&MediaUrl0=javascript:alert(1)")
	f.Add("MessageSid=" + testMessageSID + "&MessageSid=SM1&AccountSid=" + testAccountSID + "&From=a&To=b&NumMedia=%2B1&MediaUrl0=http://h")
	f.Add("NumMedia=-1&Body=%zz;")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		form, _ := url.ParseQuery(body) // partial forms are parsed too
		in, err := sms.ParseInbound(form)
		if err != nil {
			require.ErrorIs(t, err, sms.ErrInvalidWebhook)
			require.Nil(t, in)
			return
		}
		require.Regexp(t, messageSIDPattern, in.MessageSID)
		require.Regexp(t, accountSIDPattern, in.AccountSID)
		require.NotEmpty(t, in.From)
		require.NotEmpty(t, in.To)
		require.LessOrEqual(t, len(in.Media), sms.MaxMedia)
		require.True(t, in.Body != "" || len(in.Media) > 0, "accepted a message with neither body nor media")
		for _, m := range in.Media {
			u, err := url.Parse(m.URL)
			require.NoError(t, err)
			require.Contains(t, []string{"http", "https"}, u.Scheme)
			require.NotEmpty(t, u.Host)
		}
	})
}

// TestSignWebhookMatchesTwilioGo: what a stand-in for Twilio signs, twilio-go's
// validator (and so the bridge) accepts, and Twilio's own vector comes out the same.
func TestSignWebhookMatchesTwilioGo(t *testing.T) {
	// The vector from twilio-go's own tests, computed by Twilio.
	known := url.Values{
		"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"},
		"Caller": {"+14158675309"}, "From": {"+14158675309"},
		"ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
	}
	assert.Equal(t, "vOEb5UThFn24KEfnOFLQY2AE5FY=",
		sms.SignWebhook("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", known))

	token := "2bd9e9638872de601313dc77410d3b23"
	inbound := url.Values{
		"AccountSid": {"AC3b4c8d3a4a1f0e9c2d7f6e5a4b3c2d1e"}, "ApiVersion": {"2010-04-01"},
		"Body": {"Can I move my appointment to Friday?"}, "From": {testPatientNumber},
		"To": {testClinicNumber}, "MessageSid": {"SM0123456789abcdef0123456789abcdef"},
		"NumMedia": {"0"}, "ToCity": {""}, "FromZip": {""},
	}
	tests := []struct {
		name   string
		url    string
		params url.Values
	}{
		{"https without port", "https://bridge.example.org/_twilio/sms", inbound},
		{"loopback with port and query", "http://127.0.0.1:29318/_twilio/sms?tenant=clinic-7", inbound},
		{"no params", "https://bridge.example.org/_twilio/status", url.Values{}},
		{"unicode body", "https://bridge.example.org/_twilio/sms", url.Values{"Body": {"Grüße 😀 ✓"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := sms.SignWebhook(token, tt.url, tt.params)
			v := client.NewRequestValidator(token)
			assert.True(t, v.Validate(tt.url, firstValues(tt.params), sig))
			assert.True(t, v.ValidateBody(tt.url, []byte(tt.params.Encode()), sig))
			assert.True(t, sms.ValidSignature(token, tt.url, tt.params, sig))

			tampered := firstValues(tt.params)
			tampered["Body"] += "!"
			assert.False(t, v.Validate(tt.url, tampered, sig), "tampered param must fail")
			assert.False(t, v.Validate(tt.url+"x", firstValues(tt.params), sig), "other URL must fail")
			wrong := client.NewRequestValidator("0" + token[1:])
			assert.False(t, wrong.Validate(tt.url, firstValues(tt.params), sig), "other token must fail")
		})
	}

	t.Run("repeated names sign every value in order", func(t *testing.T) {
		a := sms.SignWebhook(token, "https://x.example.org/", url.Values{"MediaUrl": {"https://b", "https://a"}})
		b := sms.SignWebhook(token, "https://x.example.org/", url.Values{"MediaUrl": {"https://a", "https://b"}})
		assert.Equal(t, a, b)
		assert.NotEqual(t, a, sms.SignWebhook(token, "https://x.example.org/", url.Values{"MediaUrl": {"https://a"}}))
	})
}

func firstValues(v url.Values) map[string]string {
	out := make(map[string]string, len(v))
	for k, vs := range v {
		out[k] = vs[0]
	}
	return out
}

func FuzzSignWebhook(f *testing.F) {
	f.Add("2bd9e9638872de601313dc77410d3b23", "https://bridge.example.org/_twilio/sms", "Body", "Hello")
	f.Add("12345", "http://127.0.0.1:8080/x?y=1", "From", "+15551234567")
	f.Add("", "not a url", "", "")
	f.Fuzz(func(t *testing.T, token, rawURL, key, value string) {
		params := url.Values{key: {value}}
		v := client.NewRequestValidator(token)
		if !v.Validate(rawURL, map[string]string{key: value}, sms.SignWebhook(token, rawURL, params)) {
			t.Fatalf("twilio-go rejects SignWebhook(%q, %q, %v)", token, rawURL, params)
		}
	})
}
